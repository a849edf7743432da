-- Named queries for what labels cost (fulfil/label_costs.py).

-- name: record_price
-- The label's price, once (a label recorded again after a crash, or priced by two runs at once,
-- keeps its first row). A price fetched later (`fulfil labels prices`) is dated when its label was
-- bought, so the report counts it on the day the money was spent, as it does every other label.
INSERT INTO label_costs (tracking_pin, shipment_id, order_id, cp_shipment_id, service_code, base_amount,
                         options, adjustments, pre_tax_amount, gst_amount, pst_amount, hst_amount,
                         due_amount, call_id, priced_at)
VALUES (%(tracking_pin)s, %(shipment_id)s, %(order_id)s, %(cp_shipment_id)s, %(service_code)s, %(base)s,
        %(options)s, %(adjustments)s, %(pre_tax)s, %(gst)s, %(pst)s, %(hst)s, %(due)s, %(call_id)s,
        coalesce(%(bought_at)s::timestamptz, now()))
ON CONFLICT (tracking_pin) DO NOTHING;

-- name: costs
-- The labels priced since then, grouped by day (Eastern, Canada Post's), service or the
-- destination's province. A label voided or refunded is counted apart, so the totals net it out:
-- label_history holds every label given up (written by the void or refund move itself), whether
-- its shipment still holds it or has moved on to a replacement.
SELECT CASE %(by)s
           WHEN 'day' THEN to_char(c.priced_at AT TIME ZONE 'America/Toronto', 'YYYY-MM-DD')
           WHEN 'service' THEN c.service_code
           ELSE coalesce(o.raw_order_data #>> '{customer,shipping_address,state}', '?')
       END AS key,
       count(*) FILTER (WHERE NOT v.refunded) AS labels,
       coalesce(sum(c.base_amount) FILTER (WHERE NOT v.refunded), 0) AS base,
       coalesce(sum(c.pre_tax_amount - c.base_amount) FILTER (WHERE NOT v.refunded), 0) AS options_and_adjustments,
       coalesce(sum(c.pre_tax_amount) FILTER (WHERE NOT v.refunded), 0) AS pre_tax,
       coalesce(sum(c.gst_amount + c.pst_amount + c.hst_amount) FILTER (WHERE NOT v.refunded), 0) AS taxes,
       coalesce(sum(c.due_amount) FILTER (WHERE NOT v.refunded), 0) AS due,
       count(*) FILTER (WHERE v.refunded) AS refunded_labels,
       coalesce(sum(c.due_amount) FILTER (WHERE v.refunded), 0) AS refunded
FROM label_costs c
JOIN orders o ON o.order_id = c.order_id
CROSS JOIN LATERAL (
    SELECT EXISTS (SELECT 1 FROM label_history h WHERE h.tracking_pin = c.tracking_pin) AS refunded
) v
WHERE %(since)s::timestamptz IS NULL OR c.priced_at >= %(since)s::timestamptz
GROUP BY 1
ORDER BY 1;

-- name: unpriced_labels
-- Labels bought since then with no price on record (a price document or receipt that could not be
-- fetched when the label was bought, labels bought before fulfil kept prices), and how many of
-- them `fulfil labels prices` can fetch: those whose Canada Post shipment id and kind are known
-- (labels of the older scripts have neither). A voided label is not charged: it needs no price.
SELECT count(*) AS labels,
       count(*) FILTER (WHERE s.cp_mode IS NOT NULL AND s.cp_shipment_id IS NOT NULL) AS fetchable
FROM shipments s
WHERE s.tracking_pin IS NOT NULL
  AND s.status <> 'label_voided'
  AND (%(since)s::timestamptz IS NULL OR s.label_created_at >= %(since)s::timestamptz)
  AND NOT EXISTS (SELECT 1 FROM label_costs c WHERE c.tracking_pin = s.tracking_pin);

-- name: labels_without_price
-- The labels whose price `fulfil labels prices` fetches: the fetchable ones unpriced_labels
-- counts (any day), oldest first, only these orders' when given.
SELECT s.shipment_id, s.order_id, s.tracking_pin, s.cp_shipment_id, s.cp_mode = 'contract' AS contract,
       s.label_created_at
FROM shipments s
WHERE s.tracking_pin IS NOT NULL
  AND s.status <> 'label_voided'
  AND s.cp_mode IS NOT NULL
  AND s.cp_shipment_id IS NOT NULL
  AND (%(order_ids)s::text[] IS NULL OR s.order_id = ANY (%(order_ids)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM label_costs c WHERE c.tracking_pin = s.tracking_pin)
ORDER BY s.shipment_id;

-- name: price_standing
-- For orders asked for by id that labels_without_price left out: why (no label, priced already,
-- voided, bought by the older scripts).
SELECT o.order_id, s.status, s.tracking_pin, s.cp_mode, s.cp_shipment_id, c.due_amount
FROM unnest(%(order_ids)s::text[]) AS o (order_id)
LEFT JOIN shipments s ON s.order_id = o.order_id
LEFT JOIN label_costs c ON c.tracking_pin = s.tracking_pin
ORDER BY o.order_id;
