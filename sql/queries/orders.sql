-- Named queries for bringing orders in (fulfil/workflows/order_import.py).
-- An order row is locked (FOR UPDATE) while its new status is decided, so a concurrent import,
-- pull or tracking push cannot slip a change in between the read and the write.

-- name: lock_order
SELECT order_id, status, raw_order_data
FROM orders
WHERE order_id = %(order_id)s
FOR UPDATE;

-- name: insert_order
-- created_at is the order's own creation date, so labels are bought oldest order first.
INSERT INTO orders (order_id, status, raw_order_data, created_at)
VALUES (%(order_id)s, %(status)s, %(raw)s,
        coalesce(fulfil_try_timestamptz(%(raw)s::jsonb ->> 'created_date'), now()))
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id;

-- name: update_order
UPDATE orders
SET status = %(status)s, raw_order_data = %(raw)s
WHERE order_id = %(order_id)s;

-- name: accepted_orders_not_in
-- Orders fulfil holds as ready to ship that a listing of Best Buy's SHIPPING orders did not
-- return: their state changed on Best Buy (cancelled, shipped elsewhere) and must be read by id.
SELECT order_id
FROM orders
WHERE status = 'accepted'
  AND NOT (order_id = ANY (%(seen)s::text[]))
ORDER BY created_at, order_id;

-- name: try_pull_lock
-- One `orders pull` at a time (a session lock, released when its connection closes).
SELECT pg_try_advisory_lock(hashtext('fulfil orders pull'));

-- name: last_pull_poll
-- When an `orders pull` last asked Best Buy for orders (OR11), and how many seconds ago.
SELECT a.started_at, extract(epoch FROM clock_timestamp() - a.started_at)::float8 AS seconds_ago
FROM api_calls a
JOIN runs r ON r.run_id = a.run_id
WHERE a.service = 'BestBuy'
  AND a.endpoint = 'OR11'
  AND r.command = 'orders pull'
  AND r.run_id <> %(run_id)s
ORDER BY a.call_id DESC
LIMIT 1;

-- name: mark_missing_at_best_buy
-- Accepted orders Best Buy's answer by id did not return (0021): each marked when first missed;
-- `newly` is true for those this pull is the first to miss (reported), false for those missed
-- before (kept quiet: `fulfil status` lists them).
UPDATE orders
SET missing_at_best_buy_since = coalesce(missing_at_best_buy_since, now())
WHERE order_id = ANY (%(order_ids)s::text[])
RETURNING order_id, missing_at_best_buy_since = now() AS newly;

-- name: clear_missing_at_best_buy
-- Orders Best Buy returned again (in its listing or by id): no longer missing.
UPDATE orders
SET missing_at_best_buy_since = NULL
WHERE order_id = ANY (%(order_ids)s::text[])
  AND missing_at_best_buy_since IS NOT NULL;

-- name: orders_not_held
-- Of the order ids a person named, those fulfil has no row for (an id mistyped, an order not
-- pulled yet), in the order given: every command that takes --order refuses them the same way.
SELECT named.order_id
FROM unnest(%(order_ids)s::text[]) WITH ORDINALITY AS named(order_id, position)
WHERE NOT EXISTS (SELECT 1 FROM orders WHERE orders.order_id = named.order_id)
ORDER BY named.position;
