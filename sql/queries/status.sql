-- Named queries for `fulfil status` (fulfil/status_report.py).

-- name: order_counts
SELECT status, count(*) AS count FROM orders GROUP BY status ORDER BY status;

-- name: shipment_counts
SELECT status, count(*) AS count FROM shipments GROUP BY status ORDER BY status;

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
  AND coalesce(label_created_at, updated_at) < now() - make_interval(hours => %(hours)s)
ORDER BY since;

-- name: past_shipping_deadline
-- Orders Best Buy expects shipped by now (its shipping_deadline) that are not shipped here.
SELECT o.order_id, o.status, fulfil_try_timestamptz(o.raw_order_data ->> 'shipping_deadline') AS deadline,
       s.status AS shipment_status
FROM orders o
LEFT JOIN shipments s ON s.order_id = o.order_id
WHERE o.status = 'accepted'
  AND fulfil_try_timestamptz(o.raw_order_data ->> 'shipping_deadline') < now()
ORDER BY deadline;

-- name: last_runs
-- The latest run of each command, and whether it ended.
SELECT DISTINCT ON (command) command, run_id, hostname, pid, lease_owner, started_at, finished_at,
       exit_code, summary
FROM runs
ORDER BY command, started_at DESC;
