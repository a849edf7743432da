-- 0006: `fulfil status` and the claims at a million orders.
--
-- The counts per status come from a summary the database keeps exact itself, instead of counting
-- every order and shipment ever made; every other question `fulfil status` asks walks a small
-- partial index of the rows it is about (the attention lists stay small while the history grows);
-- the tracking claim walks an index in its own order instead of sorting every label waiting.
--
-- The summary is written without a hot row: a change of status appends one row to
-- status_count_changes (a move: from -> to; an insert: to only; a delete: from only), so
-- concurrent moves never wait for each other. Every 64th change folds the changes into
-- status_counts, under an advisory lock that nobody waits for (a mover that finds it taken leaves
-- its change for the next fold). A count is status_counts plus the changes not folded yet, read in
-- one statement, so it is exact in every snapshot: a fold deletes the changes and adds them to
-- status_counts in one transaction, and a rolled-back move takes its change with it.

CREATE TABLE IF NOT EXISTS status_counts (
    table_name text NOT NULL CHECK (table_name IN ('orders', 'shipments')),
    status     text NOT NULL,
    count      bigint NOT NULL,
    PRIMARY KEY (table_name, status)
);

CREATE TABLE IF NOT EXISTS status_count_changes (
    change_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name  text NOT NULL CHECK (table_name IN ('orders', 'shipments')),
    from_status text,                  -- NULL: rows were inserted
    to_status   text,                  -- NULL: rows were deleted
    row_count   bigint NOT NULL
);

-- The count of each status now: what `fulfil status` shows (and what to read in psql).
CREATE OR REPLACE VIEW current_status_counts AS
SELECT table_name, status, sum(count)::bigint AS count
FROM (
    SELECT table_name, status, count FROM status_counts
    UNION ALL
    SELECT table_name, to_status, row_count FROM status_count_changes WHERE to_status IS NOT NULL
    UNION ALL
    SELECT table_name, from_status, -row_count FROM status_count_changes WHERE from_status IS NOT NULL
) AS parts
GROUP BY table_name, status
HAVING sum(count) <> 0;

CREATE OR REPLACE FUNCTION fulfil_fold_status_counts() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Under REPEATABLE READ a fold could try to delete changes a concurrent fold has taken since
    -- its snapshot (a serialization failure in the caller's move): only READ COMMITTED folds.
    IF current_setting('transaction_isolation') <> 'read committed'
       OR NOT pg_try_advisory_xact_lock(hashtext('fulfil status counts')) THEN
        RETURN;
    END IF;
    WITH taken AS (
        DELETE FROM status_count_changes RETURNING table_name, from_status, to_status, row_count
    ), deltas AS (
        SELECT table_name, to_status AS status, row_count AS delta FROM taken WHERE to_status IS NOT NULL
        UNION ALL
        SELECT table_name, from_status, -row_count FROM taken WHERE from_status IS NOT NULL
    )
    INSERT INTO status_counts AS c (table_name, status, count)
    SELECT table_name, status, sum(delta) FROM deltas GROUP BY table_name, status
    ON CONFLICT (table_name, status) DO UPDATE SET count = c.count + EXCLUDED.count;
END;
$$;

-- A row's status changed (one per moved row: the WHEN of its trigger skips every other update).
CREATE OR REPLACE FUNCTION fulfil_count_status_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    change bigint;
BEGIN
    INSERT INTO status_count_changes (table_name, from_status, to_status, row_count)
    VALUES (TG_TABLE_NAME, OLD.status, NEW.status, 1)
    RETURNING change_id INTO change;
    IF change % 64 = 0 THEN
        PERFORM fulfil_fold_status_counts();
    END IF;
    RETURN NULL;
END;
$$;

-- Rows inserted or deleted, per statement (one bulk insert of shipments is one change per status).
CREATE OR REPLACE FUNCTION fulfil_count_status_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_change bigint;
    added bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH added_changes AS (
            INSERT INTO status_count_changes (table_name, to_status, row_count)
            SELECT TG_TABLE_NAME, status, count(*) FROM changed_rows GROUP BY status
            RETURNING change_id
        )
        SELECT max(change_id), count(*) INTO last_change, added FROM added_changes;
    ELSE
        WITH added_changes AS (
            INSERT INTO status_count_changes (table_name, from_status, row_count)
            SELECT TG_TABLE_NAME, status, count(*) FROM changed_rows GROUP BY status
            RETURNING change_id
        )
        SELECT max(change_id), count(*) INTO last_change, added FROM added_changes;
    END IF;
    IF added > 0 AND last_change / 64 <> (last_change - added) / 64 THEN
        PERFORM fulfil_fold_status_counts();
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION fulfil_count_status_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM status_count_changes WHERE table_name = TG_TABLE_NAME;
    DELETE FROM status_counts WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END;
$$;

-- No writer may slip between the triggers and the counts taken below: a write committed before
-- this lock is in the counts, one after it is counted by the triggers.
LOCK TABLE orders, shipments IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS orders_count_status_move ON orders;
CREATE TRIGGER orders_count_status_move AFTER UPDATE ON orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION fulfil_count_status_move();
DROP TRIGGER IF EXISTS orders_count_status_inserts ON orders;
CREATE TRIGGER orders_count_status_inserts AFTER INSERT ON orders
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION fulfil_count_status_rows();
DROP TRIGGER IF EXISTS orders_count_status_deletes ON orders;
CREATE TRIGGER orders_count_status_deletes AFTER DELETE ON orders
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION fulfil_count_status_rows();
DROP TRIGGER IF EXISTS orders_count_status_truncate ON orders;
CREATE TRIGGER orders_count_status_truncate AFTER TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION fulfil_count_status_truncate();

DROP TRIGGER IF EXISTS shipments_count_status_move ON shipments;
CREATE TRIGGER shipments_count_status_move AFTER UPDATE ON shipments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION fulfil_count_status_move();
DROP TRIGGER IF EXISTS shipments_count_status_inserts ON shipments;
CREATE TRIGGER shipments_count_status_inserts AFTER INSERT ON shipments
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION fulfil_count_status_rows();
DROP TRIGGER IF EXISTS shipments_count_status_deletes ON shipments;
CREATE TRIGGER shipments_count_status_deletes AFTER DELETE ON shipments
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION fulfil_count_status_rows();
DROP TRIGGER IF EXISTS shipments_count_status_truncate ON shipments;
CREATE TRIGGER shipments_count_status_truncate AFTER TRUNCATE ON shipments
    FOR EACH STATEMENT EXECUTE FUNCTION fulfil_count_status_truncate();

-- From scratch, also when this file runs again on a database that has the summary already.
DELETE FROM status_count_changes;
DELETE FROM status_counts;
INSERT INTO status_counts (table_name, status, count)
SELECT 'orders', status, count(*) FROM orders GROUP BY status;
INSERT INTO status_counts (table_name, status, count)
SELECT 'shipments', status, count(*) FROM shipments GROUP BY status;

-- What needs a person: a handful of rows among a million.
CREATE INDEX IF NOT EXISTS shipments_attention_idx ON shipments (updated_at)
    WHERE status IN ('label_failed', 'needs_review', 'tracking_failed', 'order_canceled');

-- Shipped labels whose PDF was never recorded (the rest of labels_without_pdf walks the pushable index).
CREATE INDEX IF NOT EXISTS shipments_shipped_without_pdf_idx ON shipments (shipment_id)
    WHERE status = 'tracking_updated' AND label_pdf_path IS NULL;

-- Accepted orders past Best Buy's shipping deadline: a range of this index, not every accepted
-- order's JSON parsed. fulfil_try_timestamptz is declared IMMUTABLE; Best Buy writes every
-- shipping_deadline with its zone ('…Z'), so its value never depends on the session's TimeZone.
CREATE INDEX IF NOT EXISTS orders_accepted_deadline_idx
    ON orders (fulfil_try_timestamptz(raw_order_data ->> 'shipping_deadline')) WHERE status = 'accepted';

-- The tracking claim (claim_next_shipment) takes half-done pushes first, then the oldest label:
-- ORDER BY status = 'tracking_sent' DESC, label_created_at NULLS FIRST, shipment_id. This index has
-- exactly that order, so the claim reads the first row that is free instead of sorting all of them
-- (shipments_pushable_idx, ordered by status itself, cannot give that ORDER BY).
CREATE INDEX IF NOT EXISTS shipments_push_queue_idx
    ON shipments ((status = 'tracking_sent') DESC, label_created_at ASC NULLS FIRST, shipment_id)
    WHERE status IN ('label_created', 'tracking_sent');
