-- 0013: what each label cost (issue 13), as Canada Post priced it in the answer that proved the
-- purchase (<shipment-price>, asked for with <provide-pricing-info>).
--
-- One row per label, keyed on its PIN: a shipment that gets a replacement label has a row for
-- each, so what every label cost is kept whatever happens to the shipment. Amounts in dollars
-- (CAD), as Canada Post gives them; options and adjustments (a fuel surcharge, a discount) by
-- code. The call whose answer carried the price is kept with it.

CREATE TABLE IF NOT EXISTS label_costs (
    tracking_pin   text PRIMARY KEY,
    shipment_id    bigint NOT NULL REFERENCES shipments (shipment_id) ON DELETE CASCADE,
    order_id       text NOT NULL,
    cp_shipment_id text,
    service_code   text NOT NULL,
    base_amount    numeric(9, 2) NOT NULL,
    options        jsonb NOT NULL DEFAULT '[]',
    adjustments    jsonb NOT NULL DEFAULT '[]',
    pre_tax_amount numeric(9, 2) NOT NULL,
    gst_amount     numeric(9, 2) NOT NULL DEFAULT 0,
    pst_amount     numeric(9, 2) NOT NULL DEFAULT 0,
    hst_amount     numeric(9, 2) NOT NULL DEFAULT 0,
    due_amount     numeric(9, 2) NOT NULL,
    call_id        bigint REFERENCES api_calls (call_id),
    priced_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT label_costs_not_negative CHECK (
        base_amount >= 0 AND pre_tax_amount >= 0 AND gst_amount >= 0 AND pst_amount >= 0
        AND hst_amount >= 0 AND due_amount >= 0)
);
CREATE INDEX IF NOT EXISTS label_costs_priced_idx ON label_costs (priced_at);
CREATE INDEX IF NOT EXISTS label_costs_shipment_idx ON label_costs (shipment_id);
