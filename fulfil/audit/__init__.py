"""The one place fulfil talks to the outside world, and its record of every word.

``sender``: AuditedHttp, the only HTTP client (deadlines, the origin credentials go to, failure
classes). ``wire``: whether a byte of a request was written, and the deadline watchdog.
``retry``: the one retry policy, from which every retry, backoff, lease length and settle window
is computed. ``log``: the api_calls writer (write-ahead, storable whatever arrives). ``redaction``:
every form of every secret, out of whatever is stored or printed. ``reader``: what `fulfil calls`
shows.
"""
