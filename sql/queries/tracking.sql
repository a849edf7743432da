-- Named queries for the tracking workflow (fulfil/workflows/tracking.py).
-- A shipment is claimed with a lease before any call to Best Buy; every write after a call is a
-- compare-and-set on status and lease owner, so a row another run has taken over (after this
-- run's lease expired, or its process died) is never overwritten.

-- name: owners_of_open_shipments
SELECT DISTINCT lease_owner
FROM shipments
WHERE status IN ('label_created', 'tracking_sent') AND lease_owner IS NOT NULL;

-- name: claim_next_shipment
-- The next shipment whose tracking Best Buy does not have yet, leased to this run. Half-done ones
-- (tracking sent, ship not confirmed) first, then oldest label first. SKIP LOCKED and the lease
-- let any number of runs share the work without two of them on one shipment.
UPDATE shipments s
SET lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE s.shipment_id = (
    SELECT shipment_id
    FROM shipments
    WHERE status IN ('label_created', 'tracking_sent')
      AND tracking_pin IS NOT NULL
      AND (lease_owner IS NULL OR lease_expires_at < now()
           OR lease_owner = ANY (%(dead_owners)s::text[]))
      AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]))
      AND NOT (shipment_id = ANY (%(skip)s::bigint[]))
    ORDER BY status = 'tracking_sent' DESC, label_created_at NULLS FIRST, shipment_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING s.shipment_id, s.order_id, s.status, s.tracking_pin, s.label_pdf_path, s.label_pdf_sha256,
          -- a label bought moments ago whose PDF is still being fetched by the run that bought it
          (s.label_pdf_path IS NULL AND s.last_error_code IS NULL
           AND s.label_created_at > now() - make_interval(secs => %(download_grace_seconds)s))
              AS pdf_on_its_way;

-- name: hold_push_lease
-- Run by the audit log in the transaction that records an OR23 or OR24 attempt, before it is sent:
-- a shipment another run has taken over is never pushed by its old owner.
SELECT shipment_id
FROM shipments
WHERE shipment_id = %(shipment_id)s
  AND status IN ('label_created', 'tracking_sent')
  AND lease_owner = %(owner)s
FOR UPDATE;

-- name: record_tracking_sent
-- Best Buy accepted the tracking number (OR23): a crash from here on resumes at OR24.
UPDATE shipments
SET status = 'tracking_sent',
    tracking_sent_at = now(),
    last_error = NULL,
    last_error_code = NULL
WHERE shipment_id = %(shipment_id)s
  AND status = 'label_created'
  AND lease_owner = %(owner)s
RETURNING shipment_id;

-- name: record_shipment_shipped
-- Best Buy has the order as shipped (OR24 answered 204, or OR11 shows it shipped).
UPDATE shipments
SET status = 'tracking_updated',
    tracking_sent_at = coalesce(tracking_sent_at, now()),
    shipped_at = now(),
    last_error = NULL,
    last_error_code = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND status IN ('label_created', 'tracking_sent')
  AND lease_owner = %(owner)s
RETURNING order_id;

-- name: record_order_shipped
-- In the same transaction as record_shipment_shipped. Best Buy's word that the order shipped is
-- fresher than any copy imported before, so it holds even over a 'canceled' read earlier.
UPDATE orders
SET status = 'shipped'
WHERE order_id = %(order_id)s
  AND status IS DISTINCT FROM 'shipped';

-- name: record_shipment_canceled
-- The order was cancelled (or refused) on Best Buy although a label exists for it.
UPDATE shipments
SET status = 'order_canceled',
    last_error_code = %(code)s,
    last_error = %(error)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND status IN ('label_created', 'tracking_sent')
  AND lease_owner = %(owner)s
RETURNING order_id;

-- name: record_order_canceled
UPDATE orders
SET status = 'canceled'
WHERE order_id = %(order_id)s
  AND status IS DISTINCT FROM 'shipped'
  AND status IS DISTINCT FROM 'canceled';

-- name: record_tracking_failed
UPDATE shipments
SET status = 'tracking_failed',
    last_error_code = %(code)s,
    last_error = %(error)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND status IN ('label_created', 'tracking_sent')
  AND lease_owner = %(owner)s
RETURNING shipment_id;

-- name: release_shipment
-- Nothing settled (Best Buy unreachable, throttling, or the run stops): the shipment keeps its
-- status for the next run, with the reason it is still there.
UPDATE shipments
SET last_error_code = coalesce(%(code)s, last_error_code),
    last_error = coalesce(%(error)s, last_error),
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND status IN ('label_created', 'tracking_sent')
  AND lease_owner = %(owner)s
RETURNING shipment_id;

-- name: shipment_states
SELECT s.shipment_id, s.order_id, s.status, s.tracking_pin, s.last_error, s.lease_owner,
       s.lease_expires_at > now() AS leased
FROM shipments s
WHERE s.order_id = ANY (%(order_ids)s::text[]);

-- name: count_pushable
SELECT count(*)
FROM shipments
WHERE status IN ('label_created', 'tracking_sent')
  AND tracking_pin IS NOT NULL
  AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]));

-- name: dry_run_candidates
SELECT order_id, status, tracking_pin
FROM shipments
WHERE status IN ('label_created', 'tracking_sent')
  AND tracking_pin IS NOT NULL
  AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]))
ORDER BY status = 'tracking_sent' DESC, label_created_at NULLS FIRST, shipment_id
LIMIT %(limit)s;

-- name: make_pushable
-- `tracking retry`: a refused push starts again from OR23, which is safe to repeat and makes sure
-- Best Buy has the tracking number before the ship confirmation.
UPDATE shipments
SET status = 'label_created',
    last_error = NULL,
    last_error_code = NULL
WHERE order_id = ANY (%(order_ids)s::text[])
  AND status = 'tracking_failed'
  AND tracking_pin IS NOT NULL
RETURNING order_id, status;
