-- Named queries for the rate budgets (fulfil/audit/budget.py); admission itself is part of the
-- statement that writes a request's row (api_calls.sql, insert_request_metered).

-- name: pause_budget
-- A throttle answer: the budget is paused for everyone until then; a pause already longer stays.
INSERT INTO rate_budgets AS b (name, paused_until, pause_reason, paused_at)
SELECT %(budget)s, now_at + make_interval(secs => %(seconds)s::double precision), %(reason)s, now_at
FROM (SELECT clock_timestamp() AS now_at) AS answered
ON CONFLICT (name) DO UPDATE
SET paused_until = greatest(b.paused_until, EXCLUDED.paused_until),
    pause_reason = CASE WHEN b.paused_until >= EXCLUDED.paused_until THEN b.pause_reason
                        ELSE EXCLUDED.pause_reason END,
    paused_at = CASE WHEN b.paused_until >= EXCLUDED.paused_until THEN b.paused_at
                     ELSE EXCLUDED.paused_at END
RETURNING paused_until;

-- name: budget_states
-- For `fulfil status`: each budget in use, its calls in the last window (an index range on
-- api_calls.rate_budget, started_at), the slots reserved ahead, its pause.
SELECT b.name, b.limit_per_window, b.window_seconds, b.interval_seconds,
       (SELECT count(*)
        FROM api_calls c
        WHERE c.rate_budget = b.name
          AND c.started_at > clock_timestamp() - make_interval(secs => coalesce(b.window_seconds, 60))
       ) AS calls_in_window,
       CASE WHEN b.interval_seconds IS NULL OR b.tat IS NULL OR b.tat <= clock_timestamp() THEN 0
            ELSE floor(extract(epoch FROM b.tat - clock_timestamp()) / b.interval_seconds)::integer
       END AS reserved_ahead,
       CASE WHEN b.paused_until > clock_timestamp() THEN b.paused_until END AS paused_until,
       CASE WHEN b.paused_until > clock_timestamp() THEN b.pause_reason END AS pause_reason,
       b.paused_at AS last_pause_at,
       b.pause_reason AS last_pause_reason
FROM rate_budgets b
ORDER BY b.name;
