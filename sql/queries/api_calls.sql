-- Named queries for the api_calls audit log (fulfil/audit/log.py).

-- name: insert_request
-- Written before the request is sent: a crash after this leaves the request with no answer.
-- deadline_at: when the attempt will have been cut off (NULL: no deadline given).
INSERT INTO api_calls (service, endpoint, related_id, method, url, request_headers, request_payload,
                       run_id, started_at, deadline_at)
VALUES (%(service)s, %(endpoint)s, %(related_id)s, %(method)s, %(url)s, %(request_headers)s,
        %(request_payload)s, %(run_id)s, clock_timestamp(),
        clock_timestamp() + make_interval(secs => %(deadline_seconds)s::double precision))
RETURNING call_id;

-- name: insert_request_guarded
-- The same, written only while the caller's guard (a named SELECT … FOR UPDATE, composed in as
-- {guard}) returns a row: the lease re-checked and the request recorded in one statement.
WITH held AS ({guard})
INSERT INTO api_calls (service, endpoint, related_id, method, url, request_headers, request_payload,
                       run_id, started_at, deadline_at)
SELECT %(service)s, %(endpoint)s, %(related_id)s, %(method)s, %(url)s, %(request_headers)s,
       %(request_payload)s, %(run_id)s, clock_timestamp(),
       clock_timestamp() + make_interval(secs => %(deadline_seconds)s::double precision)
FROM (SELECT 1 FROM held LIMIT 1) AS still_held
RETURNING call_id;

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
