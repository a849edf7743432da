-- 0015: a label may be voided after Best Buy confirmed the order shipped (issue 13 item 2).
--
-- The parcel of a shipped order sometimes never leaves (a damaged label, a wrong box). Its label
-- can be voided like any other (contract: before transmission; refund after), and a replacement
-- bought with `labels create --order`. Best Buy already told the customer the first tracking
-- number with its ship confirmation (OR24), so the replacement gets the new number (OR23) and no
-- second OR24 (Best Buy answers one with a 400, and would not notify the customer again anyway):
-- record_retracked takes it from label_created straight back to tracking_updated. The shipment
-- keeps shipped_at through the void and the replacement: that is how the push knows.

INSERT INTO shipment_moves (move, from_status, to_status, command, lease_rule) VALUES
    ('start_void', 'tracking_updated', 'label_voiding', 'labels void', 'none'),
    ('release_void_to_tracking_updated', 'label_voiding', 'tracking_updated', 'labels void', 'holder'),
    ('record_retracked', 'label_created', 'tracking_updated', 'tracking push', 'holder')
ON CONFLICT (move, from_status) DO UPDATE SET to_status = EXCLUDED.to_status,
    command = EXCLUDED.command, lease_rule = EXCLUDED.lease_rule;

ALTER TABLE shipments DROP CONSTRAINT IF EXISTS shipments_void_from_only_while_voiding;
SELECT fulfil_add_constraint('shipments', 'shipments_void_from_a_voidable_state', $c$CHECK (
    void_from_status IS NULL
    OR (status = 'label_voiding'
        AND void_from_status IN ('label_created', 'order_canceled', 'tracking_failed', 'tracking_updated')))$c$);

