-- Named queries for `fulfil orders show` (fulfil/order_story.py): one order's whole story, each an
-- index lookup by order id (orders' primary key, shipments_order_id_uidx, shipment_events_order_idx,
-- api_calls_related_idx).

-- name: order_of
SELECT order_id, status, created_at, updated_at, raw_order_data
FROM orders
WHERE order_id = %(order_id)s;

-- name: shipment_of
SELECT shipment_id, status, tracking_pin, cp_mode, cp_shipment_id, cp_request_id, label_pdf_path,
       label_pdf_bytes, attempts, last_error_code, last_error, purchase_started_at, label_created_at,
       tracking_sent_at, shipped_at, lease_owner, lease_expires_at, created_at, updated_at
FROM shipments
WHERE order_id = %(order_id)s;

-- name: events_of_order
SELECT from_status, to_status, move, reason, run_id, at
FROM shipment_events
WHERE order_id = %(order_id)s
ORDER BY event_id;

-- name: calls_of_order
SELECT call_id, service, endpoint, method, status_code, is_success, failure_class, error,
       duration_ms, started_at, run_id
FROM api_calls
WHERE related_id = %(order_id)s
ORDER BY call_id;

-- name: surplus_labels_of_order
SELECT cp_shipment_id, tracking_pin, reason, found_at, resolved_at
FROM surplus_labels
WHERE order_id = %(order_id)s
ORDER BY surplus_id;
