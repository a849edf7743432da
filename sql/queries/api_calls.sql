-- Named queries for the api_calls audit log (fulfil/audit/log.py).

-- name: no_guard
-- The guard of a request made under no claim (an order pull, a look-up): it always holds.
SELECT 1

-- name: insert_request
-- Written before the request is sent: a crash after this leaves the request with no answer.
-- Written only while the caller's guard (a named SELECT … FOR UPDATE, composed in as {guard};
-- no_guard for a request made under no claim) returns a row: the lease re-checked and the
-- request recorded in one statement. deadline_at: when the attempt will have been cut off (NULL:
-- no deadline given).
WITH held AS ({guard})
INSERT INTO api_calls (service, endpoint, related_id, method, url, request_headers, request_payload,
                       run_id, started_at, deadline_at, shipment_id)
SELECT %(service)s, %(endpoint)s, %(related_id)s, %(method)s, %(url)s, %(request_headers)s,
       %(request_payload)s, %(run_id)s, clock_timestamp(),
       clock_timestamp() + make_interval(secs => %(deadline_seconds)s::double precision),
       %(call_shipment_id)s::bigint
FROM (SELECT 1 FROM held LIMIT 1) AS still_held
RETURNING call_id;

-- name: insert_request_metered
-- The same, admitted under a rate budget in the same statement (fulfil_rate_admit, sql/0005):
-- the guard first (a budget slot is never taken for work that is no longer the caller's), then
-- the admission, then the row, started at its slot, when both allow it. Answers whether it was
-- written (call_id), else whether the guard held, and the reservation or the pause and how long
-- to wait.
WITH held AS ({guard}),
still_held AS MATERIALIZED (SELECT EXISTS (SELECT 1 FROM held) AS held),
admission AS MATERIALIZED (
    SELECT h.held, a.*
    FROM still_held h,
         LATERAL fulfil_rate_admit(%(budget)s, %(budget_calls)s, %(budget_window)s, %(budget_interval)s,
                                   %(budget_horizon)s, %(budget_longest_wait)s, %(budget_reserved)s,
                                   h.held) a
), inserted AS (
    INSERT INTO api_calls (service, endpoint, related_id, method, url, request_headers, request_payload,
                           run_id, started_at, deadline_at, rate_budget, shipment_id)
    SELECT %(service)s, %(endpoint)s, %(related_id)s, %(method)s, %(url)s, %(request_headers)s,
           %(request_payload)s, %(run_id)s, a.slot,
           a.slot + make_interval(secs => %(deadline_seconds)s::double precision), %(budget)s,
           %(call_shipment_id)s::bigint
    FROM admission a
    WHERE a.held AND a.admitted
    RETURNING call_id
)
SELECT (SELECT call_id FROM inserted) AS call_id, a.held, a.slot, a.wait_seconds, a.paused_until,
       a.pause_reason
FROM admission a;

-- name: record_response
UPDATE api_calls
SET status_code = %(status_code)s,
    response_headers = %(response_headers)s,
    response_body = %(response_body)s,
    response_truncated = %(response_truncated)s,
    is_success = %(is_success)s,
    error = %(error)s,
    failure_class = %(failure_class)s,
    duration_ms = %(duration_ms)s,
    finished_at = clock_timestamp()
WHERE call_id = %(call_id)s;
