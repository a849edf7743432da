-- 0017: one definition of "an order whose shipment still ships", for every query that asks it.
--
-- A shipment buys (or counts toward buying) a label while its order is `accepted`, or `shipped`
-- when this very shipment is the one Best Buy confirmed shipped (its label voided and replaced
-- after the ship confirmation, 0015: the parcel never left). The purchase claim, the eligible
-- count, the dry run and the replacement each asked it in their own words; now they call this.
--
-- A plain SQL expression, IMMUTABLE and not STRICT, so PostgreSQL inlines it where it is called:
-- the planner sees the same OR it saw before, and the claim's plans (tests/test_query_plans.py)
-- are unchanged.
CREATE OR REPLACE FUNCTION fulfil_order_still_ships(order_status text, shipped_at timestamptz)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT order_status = 'accepted' OR (order_status = 'shipped' AND shipped_at IS NOT NULL)
$$;
