-- Named queries for `fulfil demo` (fulfil/demo.py).

-- name: demo_results
SELECT o.order_id,
       o.status AS order_status,
       o.raw_order_data #>> '{customer,shipping_address,city}' AS city,
       o.raw_order_data #>> '{customer,shipping_address,state}' AS province,
       s.status AS shipment_status,
       s.tracking_pin,
       s.label_pdf_path,
       s.last_error,
       t.carrier_status,
       coalesce(s.parcel_count, 1) AS parcels
FROM orders o
-- one row per order: its parcel 1, the one Best Buy hears of (0020), and how many parcels it has
LEFT JOIN shipments s ON s.order_id = o.order_id AND s.parcel_no = 1
LEFT JOIN carrier_tracking t ON t.shipment_id = s.shipment_id
ORDER BY o.created_at, o.order_id;

-- name: newest_label
-- (of an order in one parcel: a split order's canceled labels are voided by hand, 0020)
SELECT order_id FROM shipments
WHERE status = 'label_created' AND parcel_count = 1
ORDER BY shipment_id DESC LIMIT 1;

-- name: count_calls
SELECT count(*) FROM api_calls;

-- name: carrier_statuses
SELECT carrier_status, count(*) FROM carrier_tracking GROUP BY carrier_status ORDER BY carrier_status;

-- name: split_orders
-- The demo's orders bought in several parcels (0020): how many, and their labels.
SELECT count(DISTINCT order_id) AS orders, count(*) AS labels
FROM shipments
WHERE parcel_count > 1 AND tracking_pin IS NOT NULL;

-- name: services_bought
-- What the demo's labels were bought as: each service, the rule that chose it (none: the
-- configured service), how many.
SELECT service_code, service_rule, count(*)
FROM shipments
WHERE service_code IS NOT NULL AND tracking_pin IS NOT NULL
GROUP BY service_code, service_rule
ORDER BY count(*) DESC, service_code, service_rule;
