"""Best Buy Canada's marketplace (Mirakl MMP seller API), as fulfil uses it.

``client``: OR11 (list and read orders), OR23 (tracking), OR24 (ship) and A01 (account), sent
through the audited HTTP layer. ``order_states``: what Mirakl's order states mean for fulfil's
own order statuses. ``order_documents``: reading OR11 answers, arrays and JSON lines of order
objects. ``errors``: Mirakl's ``{"status", "message"}`` error bodies, read leniently.
"""
