-- 0003: the shipment state machine, in the database.
--
-- shipment_states and shipment_moves are the table of fulfil/shipments/states.py (a test keeps
-- them identical). A trigger refuses any change of shipments.status that is not a move of that
-- table, however the UPDATE is written, and any move not made through fulfil_shipment_move(),
-- which checks that the run making it holds the lease when the move needs it.
-- Every change of status (and every new shipment) is written to shipment_events: the order's
-- timeline. CHECKs tie each state to the columns it requires. A new state is a row here.

CREATE TABLE IF NOT EXISTS shipment_states (
    state          text PRIMARY KEY,
    meaning        text NOT NULL,
    way_out        text NOT NULL,
    may_hold_lease boolean NOT NULL,   -- a purchase, push or void in flight, or claimed for one
    has_label      boolean NOT NULL,   -- a bought label: PIN and Canada Post shipment id set
    needs_reason   boolean NOT NULL    -- last_error says why it is there
);

CREATE TABLE IF NOT EXISTS shipment_moves (
    move        text NOT NULL,
    from_status text NOT NULL REFERENCES shipment_states (state),
    to_status   text NOT NULL REFERENCES shipment_states (state),
    command     text NOT NULL,
    -- holder: only the run holding the shipment's lease may make it (through fulfil_shipment_move)
    lease_rule  text NOT NULL CHECK (lease_rule IN ('holder', 'none')),
    PRIMARY KEY (move, from_status),
    CHECK (from_status <> to_status)
);
CREATE INDEX IF NOT EXISTS shipment_moves_pair_idx ON shipment_moves (from_status, to_status);

INSERT INTO shipment_states (state, meaning, way_out, may_hold_lease, has_label, needs_reason) VALUES
    ('label_pending', 'nothing bought yet (new, or proven not bought)',
     'nothing: the next `labels create` buys it',
     false, false, false),
    ('label_creation_initiated', 'a purchase was started; its outcome may not be known yet',
     'nothing: `labels create`/`reconcile` settle it (`fulfil labels reconcile` to do it now)',
     true, false, false),
    ('label_failed', 'Canada Post refused the request, or the order''s data cannot make one (`last_error` names the field)',
     'fix the order (a changed order is retried on its own) or the settings, then `fulfil labels retry ORDER`',
     false, false, true),
    ('needs_review', 'fulfil cannot tell whether a label was bought (a purchase left by the older scripts), or Canada Post sold the order several labels (`last_error_code` `two-labels` or `duplicate-labels`; each listed as a surplus label by `fulfil status`)',
     'several labels: void all but one at Canada Post, then `fulfil labels keep ORDER SHIPMENT_ID`; otherwise check Canada Post''s site and `fulfil labels retry --not-bought ORDER` if none exists',
     false, false, true),
    ('label_created', 'bought; the PIN is known; the PDF is on disk when `label_pdf_path` is set',
     '`fulfil labels download` if the PDF is missing; `fulfil tracking push` next',
     true, true, false),
    ('tracking_sent', 'Best Buy has the tracking number (OR23); the ship confirmation (OR24) comes next',
     'nothing: the next `fulfil tracking push` sends it',
     true, true, false),
    ('tracking_updated', 'Best Buy confirmed the shipment; the order is `shipped`',
     'nothing',
     false, true, false),
    ('tracking_failed', 'Best Buy refused tracking or ship (see `last_error`)',
     'read `last_error` (Best Buy''s message); fix the cause (carrier code, shop id…), then `fulfil tracking retry ORDER`',
     false, true, true),
    ('order_canceled', 'a label exists but the order was canceled on Best Buy',
     'void or refund the label at Canada Post',
     false, true, true),
    ('label_voiding', 'a void or refund request was started; its outcome may not be known yet',
     'nothing: the void command settles it by reading the shipment',
     true, true, false),
    ('label_voided', 'the label was voided at Canada Post (not charged)',
     'nothing; `fulfil labels create --order ORDER` buys a new one if the order still ships',
     false, true, false),
    ('refund_requested', 'the label was already transmitted; a refund was requested from Canada Post',
     'nothing; `fulfil labels create --order ORDER` buys a new one if the order still ships',
     false, true, false)
ON CONFLICT (state) DO UPDATE SET meaning = EXCLUDED.meaning, way_out = EXCLUDED.way_out,
    may_hold_lease = EXCLUDED.may_hold_lease, has_label = EXCLUDED.has_label,
    needs_reason = EXCLUDED.needs_reason;

INSERT INTO shipment_moves (move, from_status, to_status, command, lease_rule) VALUES
    ('claim_purchase', 'label_pending', 'label_creation_initiated', 'labels create', 'none'),
    ('claim_purchase', 'label_failed', 'label_creation_initiated', 'labels create', 'none'),
    ('refuse_order_data', 'label_pending', 'label_failed', 'labels create', 'none'),
    ('record_purchase', 'label_creation_initiated', 'label_created', 'labels create, labels reconcile', 'holder'),
    ('record_purchase_after_takeover', 'label_pending', 'label_created', 'labels create, labels reconcile', 'none'),
    ('record_purchase_after_takeover', 'label_creation_initiated', 'label_created', 'labels create, labels reconcile', 'none'),
    ('record_purchase_after_takeover', 'label_failed', 'label_created', 'labels create, labels reconcile', 'none'),
    ('record_purchase_after_takeover', 'needs_review', 'label_created', 'labels create, labels reconcile', 'none'),
    ('refuse_purchase', 'label_creation_initiated', 'label_failed', 'labels create, labels reconcile', 'holder'),
    ('release_purchase', 'label_creation_initiated', 'label_pending', 'labels create, labels reconcile', 'holder'),
    ('park_purchase', 'label_creation_initiated', 'needs_review', 'labels create, labels reconcile', 'holder'),
    ('park_unkeyed_purchase', 'label_creation_initiated', 'needs_review', 'labels create, labels reconcile', 'none'),
    ('park_two_labels', 'label_created', 'needs_review', 'labels create, labels reconcile', 'none'),
    ('retry_label', 'label_failed', 'label_pending', 'labels retry', 'none'),
    ('retry_label', 'needs_review', 'label_pending', 'labels retry', 'none'),
    ('keep_label', 'needs_review', 'label_created', 'labels keep', 'none'),
    ('record_tracking_sent', 'label_created', 'tracking_sent', 'tracking push', 'holder'),
    ('record_shipped', 'label_created', 'tracking_updated', 'tracking push', 'holder'),
    ('record_shipped', 'tracking_sent', 'tracking_updated', 'tracking push', 'holder'),
    ('record_canceled', 'label_created', 'order_canceled', 'tracking push', 'holder'),
    ('record_canceled', 'tracking_sent', 'order_canceled', 'tracking push', 'holder'),
    ('refuse_push', 'label_created', 'tracking_failed', 'tracking push', 'holder'),
    ('refuse_push', 'tracking_sent', 'tracking_failed', 'tracking push', 'holder'),
    ('retry_push', 'tracking_failed', 'label_created', 'tracking retry', 'none'),
    ('start_void', 'label_created', 'label_voiding', 'labels void', 'none'),
    ('start_void', 'order_canceled', 'label_voiding', 'labels void', 'none'),
    ('start_void', 'tracking_failed', 'label_voiding', 'labels void', 'none'),
    ('record_voided', 'label_voiding', 'label_voided', 'labels void', 'holder'),
    ('record_refund_requested', 'label_voiding', 'refund_requested', 'labels void', 'holder'),
    ('park_void', 'label_voiding', 'needs_review', 'labels void', 'holder'),
    ('replace_label', 'label_voided', 'label_pending', 'labels create', 'none'),
    ('replace_label', 'refund_requested', 'label_pending', 'labels create', 'none')
ON CONFLICT (move, from_status) DO UPDATE SET to_status = EXCLUDED.to_status,
    command = EXCLUDED.command, lease_rule = EXCLUDED.lease_rule;

-- The states a shipment can be in are the rows above (new states come with a migration adding
-- their row), not a list in a CHECK.
ALTER TABLE shipments DROP CONSTRAINT IF EXISTS shipments_status_known;
SELECT fulfil_add_constraint('shipments', 'shipments_status_is_a_state',
    'FOREIGN KEY (status) REFERENCES shipment_states (state)');

-- A bought label has its PIN and its Canada Post shipment id in every later state (rows adopted
-- from the older scripts, cp_mode NULL, may lack the shipment id).
ALTER TABLE shipments DROP CONSTRAINT IF EXISTS shipments_bought_has_pin;
SELECT fulfil_add_constraint('shipments', 'shipments_label_has_pin_and_id', $c$CHECK (
    status NOT IN ('label_created', 'tracking_sent', 'tracking_updated', 'tracking_failed', 'order_canceled',
                   'label_voiding', 'label_voided', 'refund_requested')
    OR (tracking_pin IS NOT NULL AND (cp_shipment_id IS NOT NULL OR cp_mode IS NULL)))$c$);
-- Only a shipment something is in flight for (or claimed for) holds a lease.
SELECT fulfil_add_constraint('shipments', 'shipments_lease_only_in_flight', $c$CHECK (
    lease_owner IS NULL
    OR status IN ('label_creation_initiated', 'label_created', 'tracking_sent', 'label_voiding'))$c$);

-- ------------------------------------------------------------------------------------------
-- shipment_events: every change of status, with the move, the run, the lease holder and why.
-- move NULL: the creation of the shipment.
-- ------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS shipment_events (
    event_id    bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    shipment_id bigint NOT NULL REFERENCES shipments (shipment_id) ON DELETE CASCADE,
    order_id    text NOT NULL,
    from_status text,                 -- NULL: the shipment was created
    to_status   text NOT NULL,
    move        text,
    run_id      text,
    lease_owner text,
    reason      text,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS shipment_events_shipment_idx ON shipment_events (shipment_id, event_id);
CREATE INDEX IF NOT EXISTS shipment_events_order_idx ON shipment_events (order_id, event_id);

-- The one way a move that needs the lease is made. Called in the WHERE clause of the UPDATE that
-- makes the move (one statement), it locks the row and answers whether this move may be made now
-- by this lease owner: false when the shipment is no longer where the move starts, or its lease
-- was taken over (the caller's compare-and-set lost). It raises for a move name that does not
-- exist. When it answers true, the trigger below lets exactly this move through.
CREATE OR REPLACE FUNCTION fulfil_shipment_move(
    p_shipment_id bigint, p_move text, p_owner text, p_run_id text, p_reason text
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
    current_owner text;
    rule text;
BEGIN
    SELECT status, lease_owner INTO current_status, current_owner
    FROM shipments WHERE shipment_id = p_shipment_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    SELECT lease_rule INTO rule FROM shipment_moves WHERE move = p_move AND from_status = current_status;
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM shipment_moves WHERE move = p_move) THEN
            RAISE EXCEPTION 'fulfil_shipment_move: % is not a move of the shipment state machine', p_move
                USING ERRCODE = 'FS001';
        END IF;
        RETURN false;
    END IF;
    IF rule = 'holder' AND (p_owner IS NULL OR current_owner IS DISTINCT FROM p_owner) THEN
        RETURN false;
    END IF;
    PERFORM set_config('fulfil.move', p_shipment_id || ':' || p_move, true);
    PERFORM set_config('fulfil.run_id', coalesce(p_run_id, ''), true);
    PERFORM set_config('fulfil.reason', coalesce(p_reason, ''), true);
    PERFORM set_config('fulfil.lease_owner', coalesce(p_owner, ''), true);
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION fulfil_shipments_check_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    authorised text := nullif(current_setting('fulfil.move', true), '');
    made text;
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM shipment_moves WHERE from_status = OLD.status AND to_status = NEW.status) THEN
        RAISE EXCEPTION 'shipment % (order %): % -> % is not a move of the shipment state machine',
            OLD.shipment_id, OLD.order_id, OLD.status, NEW.status
            USING ERRCODE = 'FS001', HINT = 'the moves allowed are the rows of shipment_moves';
    END IF;
    SELECT move INTO made FROM shipment_moves
    WHERE from_status = OLD.status AND to_status = NEW.status AND OLD.shipment_id || ':' || move = authorised;
    IF made IS NULL THEN
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
            CASE WHEN made IS NOT NULL THEN nullif(current_setting('fulfil.run_id', true), '') END,
            CASE WHEN made IS NOT NULL THEN nullif(current_setting('fulfil.lease_owner', true), '') END,
            coalesce(CASE WHEN made IS NOT NULL THEN nullif(current_setting('fulfil.reason', true), '') END,
                     NEW.last_error));
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION fulfil_shipments_record_creation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shipment_events (shipment_id, order_id, from_status, to_status, reason)
    VALUES (NEW.shipment_id, NEW.order_id, NULL, NEW.status, NEW.last_error);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS shipments_check_move ON shipments;
CREATE TRIGGER shipments_check_move BEFORE UPDATE OF status ON shipments
    FOR EACH ROW EXECUTE FUNCTION fulfil_shipments_check_move();
DROP TRIGGER IF EXISTS shipments_record_creation ON shipments;
CREATE TRIGGER shipments_record_creation AFTER INSERT ON shipments
    FOR EACH ROW EXECUTE FUNCTION fulfil_shipments_record_creation();
