-- 0008: the same state machine, in fewer steps per move.
--
-- Every purchase and every push makes four moves, and each move ran about ten small statements
-- inside PostgreSQL: fulfil_shipment_move() read the row, then the move table, then set four
-- settings; the trigger read the move table twice and the settings three times. Now the row and
-- its move are read in one lookup, the authorisation travels as one setting (a JSON array:
-- "shipment:move", run id, reason, lease owner), and the trigger reads the move table once on
-- the way every move takes (the checks and their errors are unchanged, FS001 and FS002).

CREATE OR REPLACE FUNCTION fulfil_shipment_move(
    p_shipment_id bigint, p_move text, p_owner text, p_run_id text, p_reason text
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
    current_owner text;
    rule text;
BEGIN
    SELECT s.status, s.lease_owner, m.lease_rule INTO current_status, current_owner, rule
    FROM shipments s
    LEFT JOIN shipment_moves m ON m.move = p_move AND m.from_status = s.status
    WHERE s.shipment_id = p_shipment_id
    FOR UPDATE OF s;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF rule IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM shipment_moves WHERE move = p_move) THEN
            RAISE EXCEPTION 'fulfil_shipment_move: % is not a move of the shipment state machine', p_move
                USING ERRCODE = 'FS001';
        END IF;
        RETURN false;
    END IF;
    IF rule = 'holder' AND (p_owner IS NULL OR current_owner IS DISTINCT FROM p_owner) THEN
        RETURN false;
    END IF;
    PERFORM set_config(
        'fulfil.move', json_build_array(p_shipment_id || ':' || p_move, p_run_id, p_reason, p_owner)::text, true
    );
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION fulfil_shipments_check_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    authorised json;
    made text;
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
    END IF;
    authorised := nullif(current_setting('fulfil.move', true), '')::json;
    SELECT move INTO made FROM shipment_moves
    WHERE from_status = OLD.status AND to_status = NEW.status
      AND OLD.shipment_id || ':' || move = authorised ->> 0;
    IF made IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM shipment_moves WHERE from_status = OLD.status AND to_status = NEW.status) THEN
            RAISE EXCEPTION 'shipment % (order %): % -> % is not a move of the shipment state machine',
                OLD.shipment_id, OLD.order_id, OLD.status, NEW.status
                USING ERRCODE = 'FS001', HINT = 'the moves allowed are the rows of shipment_moves';
        END IF;
        -- Every move goes through fulfil_shipment_move(): it checks the lease where the move needs
        -- it, and names the move in the shipment's history. By hand, in psql, too:
        --   UPDATE shipments SET status = … WHERE shipment_id = … AND fulfil_shipment_move(…)
        RAISE EXCEPTION 'shipment % (order %): % -> % is made through fulfil_shipment_move(), which checks the lease (held by %)',
            OLD.shipment_id, OLD.order_id, OLD.status, NEW.status, coalesce(OLD.lease_owner, 'nobody')
            USING ERRCODE = 'FS002',
                  HINT = 'moves from ' || OLD.status || ' to ' || NEW.status || ': '
                         || (SELECT string_agg(move || ' (lease: ' || lease_rule || ')', ', ')
                             FROM shipment_moves WHERE from_status = OLD.status AND to_status = NEW.status);
    END IF;
    -- One authorisation, one move.
    PERFORM set_config('fulfil.move', '', true);
    INSERT INTO shipment_events (shipment_id, order_id, from_status, to_status, move, run_id, lease_owner, reason)
    VALUES (OLD.shipment_id, OLD.order_id, OLD.status, NEW.status, made,
            nullif(authorised ->> 1, ''), nullif(authorised ->> 3, ''),
            coalesce(nullif(authorised ->> 2, ''), NEW.last_error));
    RETURN NEW;
END;
$$;
