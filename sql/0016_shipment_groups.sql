-- 0016: which Canada Post group a label was bought into (end-of-day manifests, issue 13 item 7).
--
-- With FULFIL_CANADAPOST_MANIFEST=end_of_day a contract label waits in its day's group until
-- `fulfil manifest transmit` sends the group. Canada Post's answer names the group it put the
-- label in (its rel="group" link); it is kept with the label, so `fulfil status` can name the
-- labels of past days that were never transmitted without asking Canada Post. A shipment that
-- gets another label takes that label's group (or none); labels bought before this migration have
-- none recorded.

ALTER TABLE shipments ADD COLUMN IF NOT EXISTS cp_group_id text;
SELECT fulfil_add_constraint('shipments', 'shipments_group_id_shape',
    $c$CHECK (cp_group_id IS NULL OR cp_group_id ~ '^[A-Za-z0-9._-]{1,32}$')$c$);
SELECT fulfil_add_constraint('shipments', 'shipments_group_is_a_contract_label', $c$CHECK (
    cp_group_id IS NULL OR (cp_shipment_id IS NOT NULL AND cp_mode = 'contract'))$c$);

-- The labels still waiting for their group's transmit: what `fulfil status` walks (a few a day).
CREATE INDEX IF NOT EXISTS shipments_awaiting_transmit_idx ON shipments (cp_group_id)
    WHERE cp_group_id IS NOT NULL AND transmitted_at IS NULL;
