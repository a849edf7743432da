-- 0020: an order that needs several parcels gets one shipment per parcel (issue 14).
--
-- An order whose SKUs' profiles split it (a "ships alone" item, or more than Canada Post's 30 kg
-- in one box) needs one Canada Post shipment per parcel, each bought exactly once. Each parcel is
-- a shipments row of its own, with its own customer-request-id, lease, state and history, so
-- every rule that makes one purchase exactly-once holds for each parcel unchanged. The order's
-- first row is parcel 1, made as before; the others are made by the run that claimed parcel 1,
-- after the split is decided and before parcel 1's request can go out, and each keeps its
-- parcel (planned_parcel), so the split never changes once any label of it may be bought.
--
-- Best Buy takes one tracking number per order: `tracking push` pushes parcel 1's once every
-- parcel has its label, and the other parcels follow it (shipped with it, or canceled with it).

ALTER TABLE shipments ADD COLUMN IF NOT EXISTS parcel_no smallint NOT NULL DEFAULT 1;
ALTER TABLE shipments ADD COLUMN IF NOT EXISTS parcel_count smallint NOT NULL DEFAULT 1;
-- The parcel this row buys a label for, fixed when the order was split (as LabelChoice records it).
ALTER TABLE shipments ADD COLUMN IF NOT EXISTS planned_parcel jsonb;

-- A plan never has more parcels than an order has units (fulfil/parcels/choice.py caps it).
SELECT fulfil_add_constraint('shipments', 'shipments_parcel_of_count', $c$CHECK (
    parcel_count BETWEEN 1 AND 99 AND parcel_no BETWEEN 1 AND parcel_count)$c$);
-- A split order's rows each know their parcel; an order in one parcel has none fixed.
SELECT fulfil_add_constraint('shipments', 'shipments_split_has_its_parcel', $c$CHECK (
    (parcel_count > 1) = (planned_parcel IS NOT NULL)
    AND (planned_parcel IS NULL OR (jsonb_typeof(planned_parcel) = 'object'
                                    AND planned_parcel ? 'weight_kg')))$c$);

-- One row per parcel of an order (so one active label per parcel), and one first parcel: the row
-- every order-keyed probe finds (the claim's "has a shipment yet?", `orders show`, the push).
-- The one-row-per-order index goes, under whatever name an older schema gave it.
CREATE UNIQUE INDEX IF NOT EXISTS shipments_order_parcel_uidx ON shipments (order_id, parcel_no);
CREATE UNIQUE INDEX IF NOT EXISTS shipments_first_parcel_uidx ON shipments (order_id) WHERE parcel_no = 1;
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT c.relname AS index_name, con.conname AS constraint_name
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
        WHERE i.indrelid = 'shipments'::regclass AND i.indisunique AND i.indnkeyatts = 1
          AND i.indpred IS NULL AND a.attname = 'order_id'
    LOOP
        IF found.constraint_name IS NOT NULL THEN
            EXECUTE format('ALTER TABLE shipments DROP CONSTRAINT %I', found.constraint_name);
        ELSE
            EXECUTE format('DROP INDEX %I', found.index_name);
        END IF;
    END LOOP;
END;
$$;

-- The push takes first parcels only: the others' labels wait in label_created for it.
DROP INDEX IF EXISTS shipments_pushable_idx;
CREATE INDEX IF NOT EXISTS shipments_pushable_idx
    ON shipments (status DESC, label_created_at ASC NULLS FIRST, shipment_id)
    WHERE status IN ('label_created', 'tracking_sent') AND parcel_no = 1;
-- The other parcels waiting to follow their first (a few at any time).
CREATE INDEX IF NOT EXISTS shipments_followers_idx ON shipments (order_id)
    WHERE parcel_no > 1 AND status = 'label_created';

-- Every parcel of a split order other than the first has its label (bought, or bought and
-- shipped with the first): the push's test before it tells Best Buy the order shipped. A plain
-- SQL expression, inlined where it is called.
CREATE OR REPLACE FUNCTION fulfil_every_parcel_labelled(p_order_id text) RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM shipments o
                       WHERE o.order_id = p_order_id AND o.parcel_no > 1
                         AND o.status NOT IN ('label_created', 'tracking_updated'))
$$;

-- The moves of a parcel that follows its order's first parcel: shipped with it (Best Buy has the
-- order as shipped, under parcel 1's number), or canceled with it (its label needs voiding).
INSERT INTO shipment_moves (move, from_status, to_status, command, lease_rule) VALUES
    ('ship_with_first_parcel', 'label_created', 'tracking_updated', 'tracking push', 'none'),
    ('cancel_with_first_parcel', 'label_created', 'order_canceled', 'tracking push', 'none')
ON CONFLICT (move, from_status) DO UPDATE SET to_status = EXCLUDED.to_status,
    command = EXCLUDED.command, lease_rule = EXCLUDED.lease_rule;

-- Which shipment a call was for (its claim's guard names it): the attempts of one parcel are told
-- from its order's other parcels', which share the order id in related_id. NULL for calls made
-- under no shipment's claim, and for calls recorded before this migration (one parcel per order).
ALTER TABLE api_calls ADD COLUMN IF NOT EXISTS shipment_id bigint;
