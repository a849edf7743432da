-- 0021: an accepted order Best Buy does not return is reported once, then kept in `fulfil status`
-- (issue 15).
--
-- `orders pull` reads by id every order fulfil holds as accepted that Best Buy's listing left out.
-- One Best Buy does not know at all (an order of another shop, a typo in an import) used to be
-- reported, and fail the pull, on every pull: under cron, one mail every ten minutes for ever.
-- The first pull that misses it now records when, reports it (exit 3) and the later ones stay
-- quiet; `fulfil status` lists it until Best Buy returns it again (which clears the mark) or the
-- seller deals with it.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS missing_at_best_buy_since timestamptz;

-- What `fulfil status` lists (a few rows at most).
CREATE INDEX IF NOT EXISTS orders_missing_at_best_buy_idx ON orders (missing_at_best_buy_since)
    WHERE missing_at_best_buy_since IS NOT NULL;
