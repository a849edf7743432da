-- Named queries for `fulfil status` (fulfil/status_report.py).

-- name: order_counts
-- From the summary the database keeps exact (sql/0006_scale_indexes.sql), not a count of every order.
SELECT status, count FROM current_status_counts WHERE table_name = 'orders' ORDER BY status;

-- name: shipment_counts
SELECT status, count FROM current_status_counts WHERE table_name = 'shipments' ORDER BY status;

-- name: failed_and_review
SELECT order_id, status, last_error_code, last_error, updated_at
FROM shipments
WHERE status IN ('label_failed', 'needs_review', 'tracking_failed', 'order_canceled')
ORDER BY updated_at;

-- name: open_purchases
-- Purchases whose outcome is not recorded yet; the report decides which owners are gone.
SELECT order_id, lease_owner, lease_expires_at, lease_expires_at < now() AS lease_expired,
       purchase_started_at, last_error
FROM shipments
WHERE status = 'label_creation_initiated'
ORDER BY purchase_started_at NULLS FIRST;

-- name: open_voids
-- Voids whose outcome is not recorded yet (a walk of shipments_voiding_idx); the report decides
-- which owners are gone.
SELECT order_id, lease_owner, lease_expires_at < now() AS lease_expired, void_started_at, last_error
FROM shipments
WHERE status = 'label_voiding'
ORDER BY void_started_at;

-- name: untransmitted_groups
-- End-of-day labels of past days still waiting for their group's `fulfil manifest transmit` (a
-- walk of shipments_awaiting_transmit_idx: the labels not transmitted yet). A label voided,
-- refunded, cancelled or parked is left out of a transmit anyway, so it is not counted.
SELECT cp_group_id AS group_id, count(*) AS labels, min(label_created_at) AS oldest
FROM shipments
WHERE cp_group_id IS NOT NULL AND transmitted_at IS NULL
  AND cp_group_id < %(today_group)s
  AND status IN ('label_created', 'tracking_sent', 'tracking_updated', 'tracking_failed')
GROUP BY cp_group_id
ORDER BY cp_group_id;

-- name: labels_without_pdf
-- Bought labels with no file recorded, or (checked by the report) a file gone or changed on disk.
SELECT order_id, status, tracking_pin, last_error, label_pdf_path, label_pdf_sha256
FROM shipments
WHERE status IN ('label_created', 'tracking_sent')
   OR (status = 'tracking_updated' AND label_pdf_path IS NULL)
ORDER BY shipment_id;

-- name: surplus_labels
-- Labels Canada Post sold that no shipment holds: each one costs money until it is voided.
SELECT order_id, cp_shipment_id, tracking_pin, reason, found_at
FROM surplus_labels
WHERE resolved_at IS NULL
ORDER BY found_at;

-- name: tracking_not_pushed
-- Labels bought more than %(hours)s hours ago whose tracking number Best Buy has not confirmed.
SELECT order_id, status, tracking_pin, coalesce(label_created_at, updated_at) AS since
FROM shipments
WHERE status IN ('label_created', 'tracking_sent')
  -- a split order's other parcels follow its first (0020): Best Buy hears of parcel 1 only
  AND parcel_no = 1
  AND coalesce(label_created_at, updated_at) < now() - make_interval(hours => %(hours)s)
ORDER BY since;

-- name: past_shipping_deadline
-- Orders Best Buy expects shipped by now (its shipping_deadline) that are not shipped here: a range
-- of orders_accepted_deadline_idx, and one probe of shipments_first_parcel_uidx per late order (a
-- join could hash every shipment ever made).
SELECT o.order_id, o.status, fulfil_try_timestamptz(o.raw_order_data ->> 'shipping_deadline') AS deadline,
       (SELECT s.status FROM shipments s WHERE s.order_id = o.order_id AND s.parcel_no = 1) AS shipment_status
FROM orders o
WHERE o.status = 'accepted'
  AND fulfil_try_timestamptz(o.raw_order_data ->> 'shipping_deadline') < now()
ORDER BY deadline;

-- name: parcels_needing_attention
-- Parcels not delivered that a person should look at: Canada Post tried and failed, holds or
-- returns it; it was never scanned %(no_scan_hours)s hours after its label; its expected date has
-- passed; its auto-refresh stopped. A walk of carrier_tracking_undelivered_idx.
SELECT s.order_id, t.tracking_pin, t.carrier_status, t.label_created_at, t.expected_delivery,
       t.last_event_at, t.last_event_description, t.last_event_place, t.auto_refresh,
       t.auto_refresh_stopped_reason,
       t.carrier_status = 'pre_transit'
           AND t.label_created_at < now() - make_interval(hours => %(no_scan_hours)s) AS never_scanned,
       t.expected_delivery < current_date AS overdue
FROM carrier_tracking t
JOIN shipments s ON s.shipment_id = t.shipment_id
WHERE t.carrier_status <> 'delivered'
  -- A label given up (being voided, voided, refunded) has no parcel to look at.
  AND s.status NOT IN ('label_voiding', 'label_voided', 'refund_requested')
  AND (t.carrier_status IN ('delivery_attempted', 'exception', 'returned')
       OR NOT t.auto_refresh
       OR t.expected_delivery < current_date
       OR (t.carrier_status = 'pre_transit'
           AND t.label_created_at < now() - make_interval(hours => %(no_scan_hours)s)))
ORDER BY t.label_created_at;

-- name: last_runs
-- The latest run of each command, and whether it ended: one probe of runs_command_started_idx per
-- command (the recursive part hops from one command to the next), not a walk over every run.
WITH RECURSIVE commands AS (
    (SELECT command FROM runs ORDER BY command LIMIT 1)
    UNION ALL
    SELECT (SELECT r.command FROM runs r WHERE r.command > c.command ORDER BY r.command LIMIT 1)
    FROM commands c
    WHERE c.command IS NOT NULL
)
SELECT latest.*
FROM commands c
CROSS JOIN LATERAL (
    SELECT r.command, r.run_id, r.hostname, r.pid, r.lease_owner, r.started_at, r.finished_at,
           r.exit_code, r.summary
    FROM runs r
    WHERE r.command = c.command
    ORDER BY r.started_at DESC
    LIMIT 1
) AS latest
ORDER BY latest.command;

-- name: missing_at_best_buy
-- Accepted orders Best Buy no longer returns (0021: `orders pull` reported each once): a walk of
-- orders_missing_at_best_buy_idx.
SELECT order_id, missing_at_best_buy_since AS since
FROM orders
WHERE missing_at_best_buy_since IS NOT NULL AND status = 'accepted'
ORDER BY missing_at_best_buy_since, order_id;
