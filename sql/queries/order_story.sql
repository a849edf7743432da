-- Named queries for `fulfil orders show` (fulfil/order_story.py): one order's whole story, each an
-- index lookup by order id (orders' primary key, shipments_order_parcel_uidx, shipment_events_order_idx,
-- api_calls_related_idx).

-- name: order_of
SELECT order_id, status, created_at, updated_at, raw_order_data
FROM orders
WHERE order_id = %(order_id)s;

-- name: shipment_of
-- Every shipment of the order: one per parcel (0020), parcel 1 first.
SELECT shipment_id, status, tracking_pin, cp_mode, cp_shipment_id, cp_request_id, label_pdf_path,
       label_pdf_bytes, attempts, last_error_code, last_error, purchase_started_at, label_created_at,
       tracking_sent_at, shipped_at, lease_owner, lease_expires_at, created_at, updated_at,
       service_code, service_rule, label_choice, parcel_no, parcel_count
FROM shipments
WHERE order_id = %(order_id)s
ORDER BY parcel_no;

-- name: events_of_order
-- With the parcel each event is of (0020: an order may be several shipments, one per parcel).
SELECT e.from_status, e.to_status, e.move, e.reason, e.run_id, e.at,
       (SELECT s.parcel_no FROM shipments s WHERE s.shipment_id = e.shipment_id) AS parcel_no
FROM shipment_events e
WHERE e.order_id = %(order_id)s
ORDER BY e.event_id;

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

-- name: labels_of_order
-- Every label the order's shipment held, oldest first: the ones given up (label_history, with
-- their void or refund) and the one it holds now (unless that one is given up too), each with
-- what Canada Post charged for it (label_costs, by PIN; none when no price is on record).
SELECT l.tracking_pin, l.cp_shipment_id, l.label_pdf_path, l.label_created_at, l.outcome, l.voided_at,
       l.refund_requested_at, l.refund_ticket_id, l.reason, c.service_code, c.due_amount
FROM (
    SELECT s.tracking_pin, s.cp_shipment_id, s.label_pdf_path, s.label_created_at, 'active' AS outcome,
           NULL::timestamptz AS voided_at, NULL::timestamptz AS refund_requested_at,
           NULL::text AS refund_ticket_id, NULL::text AS reason, 1 AS held_now, 0::bigint AS label_id
    FROM shipments s
    WHERE s.order_id = %(order_id)s
      AND s.tracking_pin IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM label_history h WHERE h.tracking_pin = s.tracking_pin)
    UNION ALL
    SELECT h.tracking_pin, h.cp_shipment_id, h.label_pdf_path, h.label_created_at, h.outcome, h.voided_at,
           h.refund_requested_at, h.refund_ticket_id, h.reason, 0, h.label_id
    FROM label_history h
    WHERE h.order_id = %(order_id)s
) l
LEFT JOIN label_costs c ON c.tracking_pin = l.tracking_pin
ORDER BY l.held_now, l.label_id;
