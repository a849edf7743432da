-- 0004: claims whose cost does not grow with the work waiting.
--
-- A failed order becomes eligible again when its data changes: the change itself moves its
-- shipment back to label_pending (a trigger), so a claim looks at label_pending rows only, walking
-- one small index in the order the shipments were created (oldest order first), instead of
-- hashing the data of every failed order on every claim.

CREATE INDEX IF NOT EXISTS shipments_pending_idx ON shipments (shipment_id) WHERE status = 'label_pending';

-- Labels bought whose PDF is not on file yet: what `labels create` fetches at the end of a run.
CREATE INDEX IF NOT EXISTS shipments_without_pdf_idx ON shipments (shipment_id)
    WHERE label_pdf_path IS NULL AND tracking_pin IS NOT NULL;

-- What `tracking push` takes next: half-done pushes first, then the oldest label.
CREATE INDEX IF NOT EXISTS shipments_pushable_idx
    ON shipments (status DESC, label_created_at ASC NULLS FIRST, shipment_id)
    WHERE status IN ('label_created', 'tracking_sent');

CREATE OR REPLACE FUNCTION fulfil_orders_requeue_failed_label() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE shipments
    SET status = 'label_pending', last_error = NULL, last_error_code = NULL, failed_order_data_hash = NULL
    WHERE order_id = NEW.order_id
      AND status = 'label_failed'
      AND fulfil_shipment_move(shipment_id, 'retry_label', NULL, NULL, 'the order''s data changed');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS orders_requeue_failed_label ON orders;
CREATE TRIGGER orders_requeue_failed_label AFTER UPDATE OF raw_order_data ON orders
    FOR EACH ROW WHEN (OLD.raw_order_data IS DISTINCT FROM NEW.raw_order_data)
    EXECUTE FUNCTION fulfil_orders_requeue_failed_label();

-- Orders that failed before this migration and whose data changed since: eligible now.
UPDATE shipments s
SET status = 'label_pending', last_error = NULL, last_error_code = NULL, failed_order_data_hash = NULL
FROM orders o
WHERE o.order_id = s.order_id
  AND s.status = 'label_failed'
  AND s.failed_order_data_hash IS NOT NULL
  AND s.failed_order_data_hash IS DISTINCT FROM md5(o.raw_order_data::text)
  AND fulfil_shipment_move(s.shipment_id, 'retry_label', NULL, NULL, 'the order''s data changed');
