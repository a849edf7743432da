-- Named queries for `fulfil calls` (fulfil/audit/reader.py).

-- name: list_calls
SELECT call_id, started_at, finished_at, service, endpoint, related_id, method, status_code, is_success,
       failure_class, duration_ms, error, run_id
FROM api_calls
WHERE (%(service)s::text IS NULL OR lower(service) = lower(%(service)s))
  AND (%(order_id)s::text IS NULL OR related_id = %(order_id)s)
  AND (NOT %(failed)s OR is_success IS NOT TRUE)
  AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s)
  -- A contract endpoint's name finds its non-contract twin too (CreateShipment: CreateNCShipment):
  -- which one a label used depends on the settings, not on what the seller is looking for.
  AND (%(endpoint)s::text IS NULL OR lower(endpoint) = lower(%(endpoint)s)
       OR lower(regexp_replace(endpoint, '^([A-Z][a-z]+)NC(?=[A-Z])', '\1')) = lower(%(endpoint)s))
ORDER BY call_id DESC
LIMIT %(limit)s;

-- name: get_call
SELECT * FROM api_calls WHERE call_id = %(call_id)s;
