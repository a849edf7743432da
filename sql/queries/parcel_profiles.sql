-- Named queries for parcel profiles (fulfil/parcels/store.py runs them; nothing else does).

-- name: upsert_profiles
-- A batch of profiles in one statement, one row per SKU of the arrays (a SKU at most once: the
-- CSV reader refuses a second). A profile that changes nothing is left alone, updated_at too, so
-- importing the same file every night says "unchanged" and keeps when each profile last changed.
-- Each row written comes back with whether it was new: xmax is 0 on a row version this statement
-- inserted, and this transaction's id on one it updated (the conflict's row is locked first).
INSERT INTO parcel_profiles AS p (sku, weight_kg, length_cm, width_cm, height_cm, box, ships_alone, updated_at)
SELECT n.sku, n.weight_kg, n.length_cm, n.width_cm, n.height_cm, n.box, n.ships_alone, now()
FROM unnest(%(skus)s::text[], %(weights)s::numeric[], %(lengths)s::numeric[], %(widths)s::numeric[],
            %(heights)s::numeric[], %(boxes)s::text[], %(ships_alone)s::boolean[])
     AS n (sku, weight_kg, length_cm, width_cm, height_cm, box, ships_alone)
ON CONFLICT (sku) DO UPDATE
SET weight_kg = EXCLUDED.weight_kg,
    length_cm = EXCLUDED.length_cm,
    width_cm = EXCLUDED.width_cm,
    height_cm = EXCLUDED.height_cm,
    box = EXCLUDED.box,
    ships_alone = EXCLUDED.ships_alone,
    updated_at = now()
WHERE (p.weight_kg, p.length_cm, p.width_cm, p.height_cm, p.box, p.ships_alone)
      IS DISTINCT FROM
      (EXCLUDED.weight_kg, EXCLUDED.length_cm, EXCLUDED.width_cm, EXCLUDED.height_cm, EXCLUDED.box,
       EXCLUDED.ships_alone)
RETURNING p.sku, (p.xmax = 0) AS inserted;

-- name: all_profiles
SELECT sku, weight_kg, length_cm, width_cm, height_cm, box, ships_alone, updated_at
FROM parcel_profiles
ORDER BY sku;

-- name: profiles_for_skus
SELECT sku, weight_kg, length_cm, width_cm, height_cm, box, ships_alone, updated_at
FROM parcel_profiles
WHERE sku = ANY (%(skus)s::text[])
ORDER BY sku;

-- name: skus_without_profile
-- The SKUs of orders still to label that have no profile (their labels would use the default
-- parcel), with how many such orders each, one of them, and a product title to recognise it by.
-- Still to label: the order is accepted and its shipment, if it has one yet, holds no bought
-- label (shipment_states.has_label, the state machine's own column). Lines Mirakl canceled,
-- refused or closed do not ship and are left out, as fulfil/parcels/choice.py leaves them out;
-- so are lines without a SKU in text (the label purchase refuses those orders, naming the field).
-- A SKU is compared as choice.py compares it: without the spaces around it.
SELECT l.sku,
       count(DISTINCT o.order_id) AS orders,
       min(o.order_id) AS example_order,
       max(l.product_title) AS product_title
FROM orders o
LEFT JOIN shipments s ON s.order_id = o.order_id
LEFT JOIN shipment_states st ON st.state = s.status
CROSS JOIN LATERAL (
    SELECT btrim(line ->> 'offer_sku') AS sku, line ->> 'product_title' AS product_title
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(o.raw_order_data -> 'order_lines') = 'array'
                                   THEN o.raw_order_data -> 'order_lines'
                                   ELSE '[]'::jsonb END) AS line
    WHERE jsonb_typeof(line) = 'object'
      AND jsonb_typeof(line -> 'offer_sku') = 'string'
      AND (jsonb_typeof(line -> 'order_line_state') IS DISTINCT FROM 'string'
           OR upper(btrim(line ->> 'order_line_state')) NOT IN ('CANCELED', 'REFUSED', 'CLOSED'))
) l
WHERE o.status = 'accepted'
  AND (s.shipment_id IS NULL OR NOT st.has_label)
  AND l.sku <> ''
  AND NOT EXISTS (SELECT 1 FROM parcel_profiles p WHERE p.sku = l.sku)
GROUP BY l.sku
ORDER BY count(DISTINCT o.order_id) DESC, l.sku;
