-- Named queries for `fulfil labels print` (fulfil/label_print.py).

-- name: lock_printing
-- One print run at a time, on every host (held to the end of its transaction): the labels it reads
-- as not printed are still not printed when it marks them. An advisory lock rather than row locks,
-- so a print never holds up a purchase or a push on the same shipments.
SELECT pg_advisory_xact_lock(hashtext('fulfil labels print'));

-- name: labels_to_print
-- The labels to print. A label whose shipment was voided or refunded is not printed.
SELECT s.shipment_id, s.order_id, s.tracking_pin, s.label_pdf_path, s.label_pdf_sha256, s.label_created_at,
       s.label_print_id,
       o.raw_order_data #>> '{customer,shipping_address,zip_code}' AS postal_code,
       o.raw_order_data #>> '{order_lines,0,offer_sku}' AS sku
FROM shipments s
JOIN orders o ON o.order_id = s.order_id
WHERE s.status IN ('label_created', 'tracking_sent', 'tracking_updated', 'tracking_failed')
  AND (%(reprint)s OR s.label_print_id IS NULL)
  AND (%(since)s::timestamptz IS NULL OR s.label_created_at >= %(since)s::timestamptz)
  AND (%(order_ids)s::text[] IS NULL OR s.order_id = ANY (%(order_ids)s::text[]))
  AND s.tracking_pin IS NOT NULL;

-- name: record_print
INSERT INTO label_prints (path, layout, sort, labels, pages, run_id)
VALUES (%(path)s, %(layout)s, %(sort)s, %(labels)s, %(pages)s, %(run_id)s)
RETURNING print_id, printed_at;

-- name: mark_printed
UPDATE shipments SET label_print_id = %(print_id)s WHERE shipment_id = ANY (%(shipment_ids)s::bigint[]);

-- name: unprinted_labels
-- For `fulfil status`: labels bought in the last week, on disk, that no print run has put in a file
-- (an index range on shipments_unprinted_idx: labels older than that, e.g. from before printing
-- was fulfil's, are not counted).
SELECT count(*) AS labels, min(label_created_at) AS oldest
FROM shipments
WHERE label_print_id IS NULL AND label_pdf_path IS NOT NULL
  AND label_created_at > now() - interval '7 days'
  AND status IN ('label_created', 'tracking_sent', 'tracking_updated', 'tracking_failed');
