"""End-of-day manifests (FULFIL_CANADAPOST_MANIFEST=end_of_day): transmitting the day's group of
contract labels to Canada Post exactly once, and keeping its manifests (PO number, links, PDF).

- ``store.py``: ManifestStore, the one owner of the manifest queries (sql/queries/manifests.sql);
- ``transmit.py``: the workflow of ``fulfil manifest transmit`` (intent, send, settle, fetch);
- ``views.py``: what ``fulfil manifest list`` and ``fulfil manifest show`` read back.

Canada Post's side (the request, the answers, the calls) is fulfil/canadapost/manifests.py.
"""
