-- 0019: what each label is bought as, and why (issue 14): the parcel from the order's SKU
-- profiles, the service a rule chose (or the configured one), its delivery options.
--
-- Written after the purchase's claim and before its request is sent, by the run that holds the
-- claim, so a label bought is always read back with the decision it was bought under. Shipments
-- bought before this migration have none recorded: they used the configured parcel and service.

ALTER TABLE shipments ADD COLUMN IF NOT EXISTS service_code text;
ALTER TABLE shipments ADD COLUMN IF NOT EXISTS service_rule text;
ALTER TABLE shipments ADD COLUMN IF NOT EXISTS label_choice jsonb;

-- fulfil ships within Canada: a domestic service code, as shipment.xsd's ServiceCodeType bounds it.
SELECT fulfil_add_constraint('shipments', 'shipments_service_code_shape',
    $c$CHECK (service_code IS NULL OR service_code ~ '^DOM\.[A-Z0-9.]{1,28}$')$c$);
-- A rule is named by the seller's file: one line, at most 80 characters.
SELECT fulfil_add_constraint('shipments', 'shipments_service_rule_shape',
    $c$CHECK (service_rule IS NULL OR (length(service_rule) BETWEEN 1 AND 80
        AND service_rule !~ '[[:cntrl:]]'))$c$);
-- The decision is a document with its parcel and service, never a stray scalar; and a rule or a
-- decision without the service it chose would be unreadable.
SELECT fulfil_add_constraint('shipments', 'shipments_label_choice_shape', $c$CHECK (
    label_choice IS NULL OR (jsonb_typeof(label_choice) = 'object'
        AND label_choice ? 'parcel' AND label_choice->>'service_code' = service_code))$c$);
SELECT fulfil_add_constraint('shipments', 'shipments_rule_has_service',
    $c$CHECK (service_rule IS NULL OR service_code IS NOT NULL)$c$);
