-- 0007: each claim walks an index that holds exactly its candidates, in its own order.
--
-- The download claim (claim_next_download) takes the oldest bought label whose PDF is not on
-- file yet, among labels not yet shipped. shipments_without_pdf_idx also holds shipped labels
-- without a file, so the planner had to combine it with a status index and sort the result:
-- a cost that grows with the labels waiting. This index holds only the claim's candidates, in
-- shipment_id order: the first free entry is the answer.
CREATE INDEX IF NOT EXISTS shipments_download_queue_idx ON shipments (shipment_id)
    WHERE label_pdf_path IS NULL AND tracking_pin IS NOT NULL AND status IN ('label_created', 'tracking_sent');
DROP INDEX IF EXISTS shipments_without_pdf_idx;

-- shipments_pushable_idx (0004) is superseded by shipments_push_queue_idx (0006), which has the
-- tracking claim's own ORDER BY; the same rows, kept up to date twice on every move.
DROP INDEX IF EXISTS shipments_pushable_idx;
