-- Named queries for what labels cost (fulfil/label_costs.py).

-- name: record_price
-- The label's price, once (a label recorded again after a crash keeps its first row).
INSERT INTO label_costs (tracking_pin, shipment_id, order_id, cp_shipment_id, service_code, base_amount,
                         options, adjustments, pre_tax_amount, gst_amount, pst_amount, hst_amount,
                         due_amount, call_id)
VALUES (%(tracking_pin)s, %(shipment_id)s, %(order_id)s, %(cp_shipment_id)s, %(service_code)s, %(base)s,
        %(options)s, %(adjustments)s, %(pre_tax)s, %(gst)s, %(pst)s, %(hst)s, %(due)s, %(call_id)s)
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
-- Labels bought since then with no price on record (non-contract labels, labels bought before
-- fulfil asked for prices, or one found again after a lost answer).
SELECT count(*) AS labels
FROM shipments s
WHERE s.tracking_pin IS NOT NULL
  AND (%(since)s::timestamptz IS NULL OR s.label_created_at >= %(since)s::timestamptz)
  AND NOT EXISTS (SELECT 1 FROM label_costs c WHERE c.tracking_pin = s.tracking_pin);
