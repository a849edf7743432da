-- 0001: orders, shipments, api_calls and runs.
--
-- Creates the tables of the Phase-2 workflow, or adopts a database whose Phase-1/Phase-2 scripts
-- already made `orders`, `shipments` and `api_calls`: every statement below is written so that it
-- keeps existing rows and only adds what is missing (columns, defaults, constraints, indexes).
-- Constraints that rows written by the older scripts may not satisfy are added NOT VALID: they
-- hold for every row written from now on, and are validated at once when the old rows allow it.

-- Parses a timestamp that came from outside (raw order JSON); NULL instead of an error.
CREATE OR REPLACE FUNCTION fulfil_try_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;

-- Adds a constraint NOT VALID, then validates it if the existing rows allow; keeps it either way.
CREATE OR REPLACE FUNCTION fulfil_add_constraint(tbl regclass, name text, definition text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = tbl AND conname = name) THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID', tbl, name, definition);
    BEGIN
        EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', tbl, name);
    EXCEPTION WHEN check_violation OR foreign_key_violation THEN
        RAISE NOTICE 'constraint % on % kept NOT VALID: older rows do not satisfy it', name, tbl;
    END;
END;
$$;

-- A unique index on one column, unless an equivalent one (say, the older scripts' UNIQUE) exists.
CREATE OR REPLACE FUNCTION fulfil_ensure_unique(tbl regclass, col text, index_name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = tbl AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
          AND a.attname = col
    ) THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE UNIQUE INDEX %I ON %s (%I)', index_name, tbl, col);
END;
$$;

CREATE OR REPLACE FUNCTION fulfil_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- ------------------------------------------------------------------------------------------
-- orders: one row per marketplace order; raw_order_data is the Mirakl OR11 order object.
-- status: 'accepted' = ready to ship (Mirakl SHIPPING), 'shipped', 'canceled', or a waiting
-- state; the older scripts may have written other values, so no CHECK here.
-- ------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS orders (
    order_id       text PRIMARY KEY,
    status         text NOT NULL,
    raw_order_data jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE orders ADD COLUMN IF NOT EXISTS raw_order_data jsonb;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS created_at timestamptz;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS updated_at timestamptz;
-- Older rows: the order's own creation date when the JSON has one, else the time of adoption.
UPDATE orders
SET created_at = coalesce(fulfil_try_timestamptz(raw_order_data ->> 'created_date'), now())
WHERE created_at IS NULL;
UPDATE orders SET updated_at = created_at WHERE updated_at IS NULL;
ALTER TABLE orders ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE orders ALTER COLUMN created_at SET NOT NULL;
ALTER TABLE orders ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE orders ALTER COLUMN updated_at SET NOT NULL;

-- "Accepted orders without a shipment, oldest first" walks this small index, not the table.
CREATE INDEX IF NOT EXISTS orders_accepted_created_idx
    ON orders (created_at, order_id) WHERE status = 'accepted';

DROP TRIGGER IF EXISTS orders_touch_updated_at ON orders;
CREATE TRIGGER orders_touch_updated_at BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION fulfil_touch_updated_at();

-- ------------------------------------------------------------------------------------------
-- runs: one row per command invocation; api_calls point at the run that made them.
-- ------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS runs (
    run_id      text PRIMARY KEY,
    command     text NOT NULL,
    hostname    text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    exit_code   integer,
    summary     jsonb,
    CONSTRAINT runs_finished_with_exit_code CHECK ((finished_at IS NULL) = (exit_code IS NULL))
);
CREATE INDEX IF NOT EXISTS runs_command_started_idx ON runs (command, started_at DESC);

-- ------------------------------------------------------------------------------------------
-- shipments: one per order. Status meanings (README, "Shipment states"):
--   label_pending            nothing bought; eligible to buy (new, or proven not bought)
--   label_creation_initiated intent committed, purchase may be in flight (leased)
--   label_failed             Canada Post refused the request; fix the data, `labels retry`
--   needs_review             cannot tell whether a label was bought; a person must check
--   label_created            label bought (PIN known); PDF on disk when label_pdf_path is set
--   tracking_sent            Best Buy accepted the tracking number (OR23), ship (OR24) next
--   tracking_updated         Best Buy confirmed shipped (OR24); the order is shipped
--   tracking_failed          Best Buy refused tracking or ship; see last_error
--   order_canceled           a label exists but the order was canceled on Best Buy
-- ------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id      bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    order_id         text NOT NULL REFERENCES orders (order_id),
    tracking_pin     text,
    status           text NOT NULL,
    label_pdf_path   text,
    cp_api_label_url text
);
ALTER TABLE shipments ADD COLUMN IF NOT EXISTS label_pdf_path text;
ALTER TABLE shipments ADD COLUMN IF NOT EXISTS cp_api_label_url text;
ALTER TABLE shipments
    ADD COLUMN IF NOT EXISTS cp_mode text,                  -- 'contract' or 'noncontract'
    ADD COLUMN IF NOT EXISTS cp_request_id text,            -- customer-request-id we sent
    ADD COLUMN IF NOT EXISTS cp_shipment_id text,
    ADD COLUMN IF NOT EXISTS cp_self_url text,
    ADD COLUMN IF NOT EXISTS cp_label_media_type text,
    ADD COLUMN IF NOT EXISTS label_pdf_sha256 text,
    ADD COLUMN IF NOT EXISTS label_pdf_bytes integer,
    ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_error_code text,
    ADD COLUMN IF NOT EXISTS last_error text,
    ADD COLUMN IF NOT EXISTS warnings jsonb,
    ADD COLUMN IF NOT EXISTS failed_order_data_hash text,   -- order JSON when it last failed
    ADD COLUMN IF NOT EXISTS purchase_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS label_created_at timestamptz,
    ADD COLUMN IF NOT EXISTS tracking_sent_at timestamptz,
    ADD COLUMN IF NOT EXISTS shipped_at timestamptz,
    ADD COLUMN IF NOT EXISTS lease_owner text,
    ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS created_at timestamptz,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz;
UPDATE shipments SET created_at = now() WHERE created_at IS NULL;
UPDATE shipments SET updated_at = created_at WHERE updated_at IS NULL;
ALTER TABLE shipments ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE shipments ALTER COLUMN created_at SET NOT NULL;
ALTER TABLE shipments ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE shipments ALTER COLUMN updated_at SET NOT NULL;
-- Rows adopted from the older scripts have no cp_mode: fulfil does not know which Canada Post API
-- bought them or with what lookup key, so reconcile hands their unfinished purchases to a person.

SELECT fulfil_ensure_unique('shipments', 'order_id', 'shipments_order_id_uidx');
SELECT fulfil_ensure_unique('shipments', 'tracking_pin', 'shipments_tracking_pin_uidx');
SELECT fulfil_ensure_unique('shipments', 'cp_request_id', 'shipments_cp_request_id_uidx');
SELECT fulfil_ensure_unique('shipments', 'cp_shipment_id', 'shipments_cp_shipment_id_uidx');

SELECT fulfil_add_constraint('shipments', 'shipments_order_fk',
    'FOREIGN KEY (order_id) REFERENCES orders (order_id)')
WHERE NOT EXISTS (
    SELECT 1 FROM pg_constraint WHERE conrelid = 'shipments'::regclass AND contype = 'f'
);
SELECT fulfil_add_constraint('shipments', 'shipments_status_known', $c$CHECK (status IN (
    'label_pending', 'label_creation_initiated', 'label_failed', 'needs_review', 'label_created',
    'tracking_sent', 'tracking_updated', 'tracking_failed', 'order_canceled'))$c$);
SELECT fulfil_add_constraint('shipments', 'shipments_cp_mode_known',
    $c$CHECK (cp_mode IS NULL OR cp_mode IN ('contract', 'noncontract'))$c$);
-- Once a label is bought its PIN is known, in every later state too.
SELECT fulfil_add_constraint('shipments', 'shipments_bought_has_pin', $c$CHECK (
    status NOT IN ('label_created', 'tracking_sent', 'tracking_updated') OR tracking_pin IS NOT NULL)$c$);
-- A purchase in flight always says which lookup key and which API it went out with.
SELECT fulfil_add_constraint('shipments', 'shipments_initiated_has_key', $c$CHECK (
    status <> 'label_creation_initiated'
    OR (cp_mode = 'contract' AND cp_request_id IS NOT NULL AND purchase_started_at IS NOT NULL)
    OR (cp_mode = 'noncontract' AND purchase_started_at IS NOT NULL))$c$);
SELECT fulfil_add_constraint('shipments', 'shipments_failure_has_reason', $c$CHECK (
    status NOT IN ('label_failed', 'needs_review', 'tracking_failed', 'order_canceled')
    OR last_error IS NOT NULL)$c$);
SELECT fulfil_add_constraint('shipments', 'shipments_lease_whole',
    'CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))');
SELECT fulfil_add_constraint('shipments', 'shipments_pdf_has_checksum',
    'CHECK (label_pdf_path IS NULL OR label_pdf_sha256 IS NOT NULL OR cp_mode IS NULL)');
SELECT fulfil_add_constraint('shipments', 'shipments_attempts_not_negative', 'CHECK (attempts >= 0)');

-- Work queues: shipments waiting for the next step of either workflow.
CREATE INDEX IF NOT EXISTS shipments_open_status_idx ON shipments (status, updated_at)
    WHERE status IN ('label_pending', 'label_creation_initiated', 'label_failed', 'label_created',
                     'tracking_sent');

DROP TRIGGER IF EXISTS shipments_touch_updated_at ON shipments;
CREATE TRIGGER shipments_touch_updated_at BEFORE UPDATE ON shipments
    FOR EACH ROW EXECUTE FUNCTION fulfil_touch_updated_at();

-- ------------------------------------------------------------------------------------------
-- api_calls: every request to Canada Post or Best Buy, written before it is sent and completed
-- when the answer (or the error) is known. A row with started_at and no finished_at is a call
-- whose outcome never got recorded (a crash, a kill): the request is there, the answer is not.
-- ------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS api_calls (
    call_id         bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    service         text NOT NULL,
    endpoint        text NOT NULL,
    related_id      text,
    request_payload jsonb,
    response_body   text,
    status_code     integer,
    is_success      boolean
);
ALTER TABLE api_calls ALTER COLUMN response_body DROP NOT NULL;
ALTER TABLE api_calls ALTER COLUMN status_code DROP NOT NULL;
ALTER TABLE api_calls ALTER COLUMN is_success DROP NOT NULL;
ALTER TABLE api_calls
    ADD COLUMN IF NOT EXISTS method text,
    ADD COLUMN IF NOT EXISTS url text,
    ADD COLUMN IF NOT EXISTS request_headers jsonb,          -- credentials replaced by a marker
    ADD COLUMN IF NOT EXISTS response_headers jsonb,
    ADD COLUMN IF NOT EXISTS response_truncated boolean,
    ADD COLUMN IF NOT EXISTS duration_ms integer,
    ADD COLUMN IF NOT EXISTS error text,
    ADD COLUMN IF NOT EXISTS failure_class text,
    ADD COLUMN IF NOT EXISTS started_at timestamptz,          -- NULL only on adopted older rows
    ADD COLUMN IF NOT EXISTS finished_at timestamptz,
    ADD COLUMN IF NOT EXISTS run_id text REFERENCES runs (run_id);
ALTER TABLE api_calls ALTER COLUMN started_at SET DEFAULT now();

SELECT fulfil_add_constraint('api_calls', 'api_calls_failure_class_known', $c$CHECK (
    failure_class IS NULL
    OR failure_class IN ('definitive', 'not_sent', 'indeterminate', 'rate_limited'))$c$);
-- An answer (or error) is only ever recorded together with the time it arrived.
SELECT fulfil_add_constraint('api_calls', 'api_calls_outcome_has_time', $c$CHECK (
    started_at IS NULL OR finished_at IS NOT NULL
    OR (status_code IS NULL AND is_success IS NULL AND error IS NULL))$c$);
SELECT fulfil_add_constraint('api_calls', 'api_calls_success_has_no_failure',
    'CHECK (is_success IS NOT TRUE OR failure_class IS NULL)');

CREATE INDEX IF NOT EXISTS api_calls_related_idx ON api_calls (related_id, call_id);
CREATE INDEX IF NOT EXISTS api_calls_service_endpoint_idx ON api_calls (service, endpoint, call_id);
CREATE INDEX IF NOT EXISTS api_calls_run_idx ON api_calls (run_id);
CREATE INDEX IF NOT EXISTS api_calls_unsuccessful_idx ON api_calls (call_id) WHERE is_success IS NOT TRUE;
