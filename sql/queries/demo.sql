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
       t.carrier_status
FROM orders o
LEFT JOIN shipments s ON s.order_id = o.order_id
LEFT JOIN carrier_tracking t ON t.shipment_id = s.shipment_id
ORDER BY o.created_at, o.order_id;

-- name: newest_label
SELECT order_id FROM shipments WHERE status = 'label_created' ORDER BY shipment_id DESC LIMIT 1;

-- name: count_calls
SELECT count(*) FROM api_calls;

-- name: carrier_statuses
SELECT carrier_status, count(*) FROM carrier_tracking GROUP BY carrier_status ORDER BY carrier_status;

-- name: services_bought
-- What the demo's labels were bought as: each service, the rule that chose it (none: the
-- configured service), how many.
SELECT service_code, service_rule, count(*)
FROM shipments
WHERE service_code IS NOT NULL AND tracking_pin IS NOT NULL
GROUP BY service_code, service_rule
ORDER BY count(*) DESC, service_code, service_rule;
