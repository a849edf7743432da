-- Named queries for --metrics-file (fulfil/metrics.py).

-- name: calls_of_run
-- Every call one run made (an index range on api_calls.run_id): its service, endpoint, outcome
-- and duration.
SELECT service, endpoint,
       CASE WHEN is_success THEN 'ok'
            WHEN failure_class IS NOT NULL THEN failure_class
            WHEN status_code IS NOT NULL THEN 'error'
            ELSE 'no_answer' END AS outcome,
       duration_ms
FROM api_calls
WHERE run_id = %(run_id)s;

-- name: parcels_by_carrier_status
SELECT carrier_status, count(*) AS parcels
FROM carrier_tracking
GROUP BY carrier_status;

-- name: tracking_switches
SELECT (SELECT paused FROM tracking_control) AS paused,
       coalesce((SELECT calls FROM tracking_daily_calls
                 WHERE day = (now() AT TIME ZONE 'America/Toronto')::date), 0) AS daily_calls;
