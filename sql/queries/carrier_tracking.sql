-- Named queries for the carrier tracking cache (fulfil/carrier_tracking/store.py).

-- name: claim_due_refresh
-- The most urgent parcel due for a refresh, taken for this refresh: its next refresh is pushed out
-- by the lease, so no other refresher (process or host) takes it meanwhile, and a refresher that
-- dies leaves it due again when the lease ends. Parcels past the cut-off are not asked about.
-- Under a daily cap the claim also takes one of the day's calls, and only if one is left: the
-- quota row's count is re-checked on the row ON CONFLICT locks, so refreshers never exceed it.
-- due_by: the cycle's start; a parcel that fell due again during the cycle (its interval is
-- shorter than the cycle) waits for the next one, so a cycle ends.
WITH due AS (
    SELECT c.shipment_id, c.next_refresh_at AS was_due
    FROM carrier_tracking c
    WHERE c.auto_refresh AND c.carrier_status <> 'delivered'
      AND c.next_refresh_at <= least(now(), coalesce(%(due_by)s::timestamptz, now()))
      AND c.label_created_at > now() - make_interval(secs => %(cutoff_seconds)s)
      AND (%(order_ids)s::text[] IS NULL
           OR c.shipment_id IN (SELECT shipment_id FROM shipments WHERE order_id = ANY (%(order_ids)s::text[])))
    ORDER BY c.refresh_priority, c.next_refresh_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), quota AS (
    INSERT INTO tracking_daily_calls AS q (day, calls)
    SELECT (now() AT TIME ZONE 'America/Toronto')::date, 1 FROM due WHERE %(daily_calls)s::integer IS NOT NULL
    ON CONFLICT (day) DO UPDATE SET calls = q.calls + 1 WHERE q.calls < %(daily_calls)s::integer
    RETURNING q.day
)
UPDATE carrier_tracking t
SET next_refresh_at = now() + make_interval(secs => %(lease_seconds)s)
FROM due, shipments s
WHERE t.shipment_id = due.shipment_id AND s.shipment_id = t.shipment_id
  AND (%(daily_calls)s::integer IS NULL OR EXISTS (SELECT 1 FROM quota))
RETURNING t.shipment_id, t.tracking_pin, t.carrier_status, s.order_id, due.was_due,
          (SELECT day FROM quota) AS quota_day;

-- name: claim_parcel
-- One parcel taken for `fulfil tracking show` to ask about now (it was stale, or --refresh),
-- unless another refresher holds it (SKIP LOCKED) or it was asked about within the cool-down;
-- the same lease and daily cap as a refresher's claim. Its schedule is left as it was if nothing
-- is asked (release_refresh), and set by the answer otherwise.
WITH parcel AS (
    SELECT c.shipment_id, c.next_refresh_at AS was_due
    FROM carrier_tracking c
    WHERE c.shipment_id = %(shipment_id)s
      AND NOT EXISTS (
          SELECT 1 FROM (
              SELECT r.at FROM tracking_refreshes r
              WHERE r.shipment_id = c.shipment_id
              ORDER BY r.refresh_id DESC
              LIMIT 1
          ) last
          WHERE last.at > now() - make_interval(secs => %(cool_down_seconds)s))
    FOR UPDATE SKIP LOCKED
), quota AS (
    INSERT INTO tracking_daily_calls AS q (day, calls)
    SELECT (now() AT TIME ZONE 'America/Toronto')::date, 1 FROM parcel WHERE %(daily_calls)s::integer IS NOT NULL
    ON CONFLICT (day) DO UPDATE SET calls = q.calls + 1 WHERE q.calls < %(daily_calls)s::integer
    RETURNING q.day
)
UPDATE carrier_tracking t
SET next_refresh_at = greatest(t.next_refresh_at, now() + make_interval(secs => %(lease_seconds)s))
FROM parcel, shipments s
WHERE t.shipment_id = parcel.shipment_id AND s.shipment_id = t.shipment_id
  AND (%(daily_calls)s::integer IS NULL OR EXISTS (SELECT 1 FROM quota))
RETURNING t.shipment_id, t.tracking_pin, t.carrier_status, s.order_id, parcel.was_due,
          (SELECT day FROM quota) AS quota_day;

-- name: last_asked
-- When this parcel was last asked about (answered or not), for the cool-down of a manual refresh.
SELECT r.at FROM tracking_refreshes r
WHERE r.shipment_id = %(shipment_id)s
ORDER BY r.refresh_id DESC
LIMIT 1;

-- name: daily_calls_used
SELECT coalesce((SELECT calls FROM tracking_daily_calls
                 WHERE day = (now() AT TIME ZONE 'America/Toronto')::date), 0) AS calls,
       extract(epoch FROM (date_trunc('day', now() AT TIME ZONE 'America/Toronto') + interval '1 day')
                          - (now() AT TIME ZONE 'America/Toronto')) AS seconds_to_next_day;

-- name: budget_outlook
-- When group E's budget admits its next call (the GCRA's theoretical arrival time, or the end of
-- a pause every process keeps to), for the summary of a refresh.
SELECT greatest(extract(epoch FROM tat - now()), 0) AS next_slot_seconds,
       CASE WHEN paused_until > now() THEN extract(epoch FROM paused_until - now()) END AS paused_seconds,
       CASE WHEN paused_until > now() THEN pause_reason END AS pause_reason,
       interval_seconds
FROM rate_budgets
WHERE name = %(budget)s;

-- name: release_refresh
-- Nothing was asked (held back by the budget, or Canada Post unreachable): due again as it was,
-- and the day's call it took under a daily cap given back.
WITH given_back AS (
    UPDATE tracking_daily_calls SET calls = calls - 1
    WHERE day = %(quota_day)s AND calls > 0
)
UPDATE carrier_tracking SET next_refresh_at = %(was_due)s WHERE shipment_id = %(shipment_id)s;

-- name: count_due
SELECT count(*) AS count
FROM carrier_tracking c
WHERE c.auto_refresh AND c.carrier_status <> 'delivered'
  AND c.next_refresh_at <= now()
  AND c.label_created_at > now() - make_interval(secs => %(cutoff_seconds)s)
  AND (%(order_ids)s::text[] IS NULL
           OR c.shipment_id IN (SELECT shipment_id FROM shipments WHERE order_id = ANY (%(order_ids)s::text[])));

-- name: lock_tracking
-- The parcel's row, locked for the refresh being recorded (two refreshers of one parcel record
-- one after the other, never interleaved).
SELECT shipment_id, tracking_pin, carrier_status, consecutive_failures, auto_refresh, label_created_at
FROM carrier_tracking
WHERE shipment_id = %(shipment_id)s
FOR UPDATE;

-- name: forget_events_not_in_answer
-- The events of this parcel that the answer no longer lists (Canada Post corrected them).
DELETE FROM tracking_events e
WHERE e.shipment_id = %(shipment_id)s
  AND NOT EXISTS (
      SELECT 1
      FROM unnest(%(event_keys)s::text[], %(occurred_ats)s::timestamptz[], %(sites)s::text[])
          AS a(event_key, occurred_at, site)
      WHERE a.event_key = e.event_key AND a.occurred_at = e.occurred_at AND a.site = e.site
  );

-- name: upsert_events
-- Every event of the answer, once: an event seen before keeps its row (and when it was first seen).
INSERT INTO tracking_events AS e (shipment_id, event_code, event_key, occurred_at, time_zone, local_time,
                                  description, site, province, signatory, carrier_status)
SELECT %(shipment_id)s, a.event_code, a.event_key, a.occurred_at, a.time_zone, a.local_time,
       a.description, a.site, a.province, a.signatory, a.carrier_status
FROM unnest(%(event_codes)s::text[], %(event_keys)s::text[], %(occurred_ats)s::timestamptz[],
            %(time_zones)s::text[], %(local_times)s::timestamp[], %(descriptions)s::text[],
            %(sites)s::text[], %(provinces)s::text[], %(signatories)s::text[], %(statuses)s::text[])
    AS a(event_code, event_key, occurred_at, time_zone, local_time, description, site, province,
         signatory, carrier_status)
ON CONFLICT (shipment_id, event_key, occurred_at, site) DO UPDATE
SET event_code = EXCLUDED.event_code,
    time_zone = EXCLUDED.time_zone,
    local_time = EXCLUDED.local_time,
    description = EXCLUDED.description,
    province = EXCLUDED.province,
    signatory = EXCLUDED.signatory,
    carrier_status = EXCLUDED.carrier_status;

-- name: record_answer
UPDATE carrier_tracking
SET carrier_status = %(carrier_status)s,
    expected_delivery = %(expected_delivery)s,
    delivered_at = %(delivered_at)s,
    last_event_at = %(last_event_at)s,
    last_event_code = %(last_event_code)s,
    last_event_description = %(last_event_description)s,
    last_event_place = %(last_event_place)s,
    refreshed_at = now(),
    next_refresh_at = coalesce(%(next_refresh_at)s, next_refresh_at),
    refresh_count = refresh_count + 1,
    consecutive_failures = 0,
    last_refresh_error = NULL
WHERE shipment_id = %(shipment_id)s;

-- name: record_failure
UPDATE carrier_tracking
SET next_refresh_at = %(next_refresh_at)s,
    refresh_count = refresh_count + 1,
    consecutive_failures = consecutive_failures + 1,
    last_refresh_error = %(error)s,
    auto_refresh = auto_refresh AND NOT %(stop)s,
    auto_refresh_stopped_reason = CASE WHEN auto_refresh AND %(stop)s THEN %(stop_reason)s
                                       ELSE auto_refresh_stopped_reason END
WHERE shipment_id = %(shipment_id)s
RETURNING auto_refresh;

-- name: log_refresh
INSERT INTO tracking_refreshes (shipment_id, outcome, carrier_status, error, run_id, call_id)
VALUES (%(shipment_id)s, %(outcome)s, %(carrier_status)s, %(error)s, %(run_id)s, %(call_id)s);

-- name: set_auto_refresh
UPDATE carrier_tracking
SET auto_refresh = %(on)s,
    auto_refresh_stopped_reason = CASE WHEN %(on)s THEN NULL ELSE %(reason)s END,
    consecutive_failures = CASE WHEN %(on)s THEN 0 ELSE consecutive_failures END,
    next_refresh_at = CASE WHEN %(on)s THEN least(next_refresh_at, now()) ELSE next_refresh_at END
WHERE shipment_id = %(shipment_id)s
RETURNING shipment_id;

-- name: shipments_of_orders_by_id
SELECT s.order_id, s.shipment_id
FROM shipments s
JOIN carrier_tracking t ON t.shipment_id = s.shipment_id
WHERE s.order_id = ANY (%(order_ids)s::text[]);

-- name: tracking_of_orders
-- What `fulfil tracking show` answers from: by order id or by PIN.
SELECT s.order_id, t.*
FROM shipments s
JOIN carrier_tracking t ON t.shipment_id = s.shipment_id
WHERE s.order_id = ANY (%(keys)s::text[]) OR s.tracking_pin = ANY (%(keys)s::text[]);

-- name: events_of
SELECT event_code, occurred_at, time_zone, local_time, description, site, province, signatory, carrier_status
FROM tracking_events
WHERE shipment_id = %(shipment_id)s
ORDER BY occurred_at DESC, tracking_event_id;

-- name: database_now
-- The transaction's time: schedules are reckoned on the database's clock, shared by every host.
SELECT now() AS now;

-- name: pause_refreshes
UPDATE tracking_control SET paused = true, paused_at = coalesce(paused_at, now()), reason = %(reason)s
RETURNING paused_at;

-- name: resume_refreshes
UPDATE tracking_control SET paused = false, paused_at = NULL, reason = NULL;

-- name: refresh_pause
SELECT paused_at, reason FROM tracking_control WHERE paused;
