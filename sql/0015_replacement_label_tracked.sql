-- 0015: a replacement label is tracked afresh (issue 13, item 2).
--
-- A label given up stops its parcel's tracking (0011: auto-refresh off, "its label was voided");
-- the label bought to replace it is a parcel that travels, so a new PIN on a shipment now also
-- turns auto-refresh back on. Otherwise as in 0009: the old parcel's events are not the new one's.
CREATE OR REPLACE FUNCTION fulfil_track_new_label() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    known text;
BEGIN
    SELECT tracking_pin INTO known FROM carrier_tracking WHERE shipment_id = NEW.shipment_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO carrier_tracking (shipment_id, tracking_pin, label_created_at)
        VALUES (NEW.shipment_id, NEW.tracking_pin, coalesce(NEW.label_created_at, now()))
        ON CONFLICT (shipment_id) DO NOTHING;
        RETURN NULL;
    END IF;
    IF known = NEW.tracking_pin THEN
        RETURN NULL;
    END IF;
    DELETE FROM tracking_events WHERE shipment_id = NEW.shipment_id;
    UPDATE carrier_tracking
    SET tracking_pin = NEW.tracking_pin,
        label_created_at = coalesce(NEW.label_created_at, now()),
        carrier_status = 'pre_transit',
        expected_delivery = NULL,
        delivered_at = NULL,
        last_event_at = NULL,
        last_event_code = NULL,
        last_event_description = NULL,
        last_event_place = NULL,
        refreshed_at = NULL,
        next_refresh_at = now(),
        consecutive_failures = 0,
        last_refresh_error = NULL,
        auto_refresh = true,
        auto_refresh_stopped_reason = NULL
    WHERE shipment_id = NEW.shipment_id;
    RETURN NULL;
END;
$$;
