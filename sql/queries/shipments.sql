-- Every query on shipments (fulfil/shipments/store.py runs them; nothing else does).
--
-- A change of status is a move of the state machine (fulfil/shipments/states.py, and the
-- shipment_moves table): each UPDATE that makes one names its move in fulfil_shipment_move(),
-- called in its WHERE clause, which locks the row and answers whether this run may make the move
-- now (the shipment is where the move starts and, for a move that needs it, this run holds the
-- lease). Zero rows updated: the row was no longer ours (another run moved it or took it over).
-- Writes that keep the status are compare-and-set on status and lease owner the same way.

-- ============================================================================================
-- Buying labels (fulfil labels create, reconcile, retry, keep)
-- ============================================================================================

-- name: create_pending_shipments
-- One shipment row per accepted order that has none. The customer-request-id is fixed here, once
-- per shipment, and random: a reset database can never reuse an id Canada Post already knows.
INSERT INTO shipments (order_id, status, cp_request_id)
SELECT o.order_id, 'label_pending', 'F' || replace(gen_random_uuid()::text, '-', '')
FROM orders o
WHERE o.status = 'accepted'
  -- OFFSET 0 keeps this a probe of shipments_order_parcel_uidx per accepted order: the planner would
  -- otherwise turn it into a hash anti-join over every shipment ever made.
  AND NOT EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = o.order_id OFFSET 0)
  AND (%(order_ids)s::text[] IS NULL OR o.order_id = ANY (%(order_ids)s::text[]))
ORDER BY o.created_at, o.order_id
LIMIT %(limit)s
-- No conflict target: every unique index of shipments is an arbiter. With one named, a run racing
-- another for the same order could pass the named index's check, then meet the other run's row in
-- shipments_order_parcel_uidx (order_id, parcel_no) and fail with a UniqueViolation instead of
-- doing nothing (seen under the chaos test: three `labels create` at once).
ON CONFLICT DO NOTHING
RETURNING order_id;

-- name: claim_next_purchase
-- The next order to buy a label for, claimed in one statement: label_creation_initiated with this
-- run's lease and the key Canada Post can find it by, committed before anything is sent (SKIP
-- LOCKED: other processes and workers take the next one). Walks shipments_pending_idx in
-- creation order, so its cost does not grow with the orders waiting. Returns the order's data;
-- an order whose data cannot make a request is refused right after (refuse_purchase). Without
-- --order, the store runs it without its order filter line (fulfil/shipments/store.py).
UPDATE shipments s
SET status = 'label_creation_initiated',
    cp_mode = %(cp_mode)s,
    cp_request_id = coalesce(s.cp_request_id, 'F' || replace(gen_random_uuid()::text, '-', '')),
    purchase_started_at = now(),
    attempts = s.attempts + 1,
    lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    last_error = NULL,
    last_error_code = NULL,
    failed_order_data_hash = NULL,
    warnings = NULL
FROM orders o
WHERE s.shipment_id = (
        SELECT p.shipment_id
        FROM shipments p
        WHERE p.status = 'label_pending'
          -- A probe of the order per pending row, in index order (OFFSET 0 keeps it one): joined,
          -- the planner may read every accepted order and sort, which grows with the orders waiting.
          -- (or shipped: the replacement of a label Best Buy had confirmed shipped, 0015, 0017)
          AND EXISTS (SELECT 1 FROM orders po
                      WHERE po.order_id = p.order_id
                        AND fulfil_order_still_ships(po.status, p.shipped_at)
                      OFFSET 0)
          AND (%(order_ids)s::text[] IS NULL OR p.order_id = ANY (%(order_ids)s::text[]))
        ORDER BY p.shipment_id
        LIMIT 1
        FOR UPDATE OF p SKIP LOCKED
    )
  AND o.order_id = s.order_id
  AND fulfil_shipment_move(s.shipment_id, 'claim_purchase', %(owner)s, %(run_id)s, %(reason)s)
RETURNING s.shipment_id, s.order_id, s.cp_request_id, s.purchase_started_at, s.parcel_no, s.parcel_count,
          s.planned_parcel, o.raw_order_data::text AS raw_order_text

-- name: split_order_into_parcels
-- Parcel 1 of an order that needs several (0020), while this run still holds its claim and before
-- its request can go out: it becomes parcel 1 of N with its parcel fixed, and parcels 2..N are
-- made, label_pending, each with its own parcel and customer-request-id (the claim loop buys
-- them). One statement, so the split is all made or not at all; none made (no rows): the claim is
-- no longer this run's. A shipment of an order Best Buy confirmed shipped (its label replaced,
-- 0015) passes shipped_at on, so its parcels still ship and follow it.
WITH first AS (
    UPDATE shipments
    SET parcel_count = %(parcel_count)s, planned_parcel = %(first_parcel)s
    WHERE shipment_id = %(shipment_id)s
      AND status = 'label_creation_initiated'
      AND lease_owner = %(owner)s
      AND parcel_no = 1
      AND parcel_count = 1
    RETURNING order_id, shipped_at
)
INSERT INTO shipments (order_id, status, cp_request_id, parcel_no, parcel_count, planned_parcel, shipped_at)
SELECT f.order_id, 'label_pending', 'F' || replace(gen_random_uuid()::text, '-', ''), p.position + 1,
       %(parcel_count)s, p.parcel, f.shipped_at
FROM first f, jsonb_array_elements(%(other_parcels)s::jsonb) WITH ORDINALITY AS p(parcel, position)
RETURNING shipment_id;

-- name: mark_failed_before_sending
-- The order's data cannot make a request: nothing was sent.
UPDATE shipments
SET status = 'label_failed',
    last_error_code = %(code)s,
    last_error = %(error)s,
    failed_order_data_hash = %(order_data_hash)s,
    warnings = %(warnings)s
WHERE shipment_id = %(shipment_id)s
  -- again for an order that failed before (no move), or from label_pending (a move)
  AND (status = 'label_failed' OR fulfil_shipment_move(%(shipment_id)s, 'refuse_order_data', %(owner)s, %(run_id)s, %(reason)s));

-- name: record_label_bought
-- The lease is kept for the PDF's download (record_label_file or record_label_download_failed
-- gives it up), so no other run fetches the same label meanwhile.
UPDATE shipments
SET status = 'label_created',
    tracking_pin = %(tracking_pin)s,
    cp_shipment_id = %(cp_shipment_id)s,
    cp_self_url = %(cp_self_url)s,
    cp_api_label_url = %(cp_label_url)s,
    cp_label_media_type = %(cp_label_media_type)s,
    cp_group_id = %(cp_group_id)s,
    label_created_at = now(),
    warnings = %(warnings)s,
    last_error = NULL,
    last_error_code = NULL,
    lease_expires_at = now() + make_interval(secs => %(download_lease_seconds)s)
WHERE shipment_id = %(shipment_id)s
  AND fulfil_shipment_move(%(shipment_id)s, 'record_purchase', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- name: record_label_failed
UPDATE shipments
SET status = 'label_failed',
    last_error_code = %(code)s,
    last_error = %(error)s,
    failed_order_data_hash = %(order_data_hash)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND fulfil_shipment_move(%(shipment_id)s, 'refuse_purchase', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- name: requeue_if_order_changed
-- Right after a refusal: an order whose data changed while its purchase was under way goes back to
-- label_pending, as the change would have done had it come after (the change's trigger found no
-- label_failed row to requeue then). The refusal judged the data the claim read, not these.
UPDATE shipments s
SET status = 'label_pending', last_error = NULL, last_error_code = NULL, failed_order_data_hash = NULL
FROM orders o
WHERE s.shipment_id = %(shipment_id)s
  AND o.order_id = s.order_id
  AND s.status = 'label_failed'
  AND s.failed_order_data_hash IS DISTINCT FROM md5(o.raw_order_data::text)
  AND fulfil_shipment_move(s.shipment_id, 'retry_label', %(owner)s, %(run_id)s,
                           'the order''s data changed while its label was being bought')
RETURNING s.shipment_id;

-- name: release_to_pending
-- Proven not bought (never sent, refused before processing, or not found after settling).
UPDATE shipments
SET status = 'label_pending',
    last_error_code = %(code)s,
    last_error = %(error)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND fulfil_shipment_move(%(shipment_id)s, 'release_purchase', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- name: park_for_review
UPDATE shipments
SET status = 'needs_review',
    last_error_code = %(code)s,
    last_error = %(error)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND fulfil_shipment_move(%(shipment_id)s, 'park_purchase', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- name: leave_unsettled
-- The outcome is unknown and Canada Post shows nothing yet: the row stays initiated, and a
-- reconcile after the lease expires asks again.
UPDATE shipments
SET last_error_code = %(code)s,
    last_error = %(error)s
WHERE shipment_id = %(shipment_id)s
  AND status = 'label_creation_initiated'
  AND lease_owner = %(owner)s;

-- name: owners_of_open_purchases
SELECT DISTINCT lease_owner
FROM shipments
WHERE status = 'label_creation_initiated' AND lease_owner IS NOT NULL;

-- name: park_unkeyed_purchases
-- Purchases left unfinished by the older scripts: fulfil has no key to look them up with.
UPDATE shipments
SET status = 'needs_review',
    last_error_code = 'unknown-purchase',
    last_error = 'a label purchase was started by an earlier tool and never finished; check Canada Post '
        || '(the shipments of that day, reference ' || order_id || ') and then run '
        || '`fulfil labels retry --not-bought ' || order_id || '` if no label was bought'
WHERE status = 'label_creation_initiated'
  AND cp_mode IS NULL
  AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]))
  AND fulfil_shipment_move(shipment_id, 'park_unkeyed_purchase', %(owner)s, %(run_id)s, %(reason)s)
RETURNING order_id;

-- name: claim_stuck_purchase
-- A purchase whose owner is gone (lease expired, or its process is dead on this host).
UPDATE shipments s
SET lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE s.shipment_id = (
    SELECT shipment_id
    FROM shipments
    WHERE status = 'label_creation_initiated'
      AND cp_mode IS NOT NULL
      AND (lease_expires_at IS NULL OR lease_expires_at < now()
           OR lease_owner = ANY (%(dead_owners)s::text[]))
      AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]))
      AND NOT (shipment_id = ANY (%(skip)s::bigint[]))
    ORDER BY purchase_started_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING s.shipment_id, s.order_id, s.cp_mode, s.cp_request_id, s.purchase_started_at, s.parcel_no,
          s.parcel_count;

-- name: purchase_calls
-- What the audit log knows about one purchase attempt, oldest first.
SELECT call_id, endpoint, status_code, is_success, failure_class, response_body, finished_at
FROM api_calls
WHERE related_id = %(order_id)s
  AND service = 'CanadaPost'
  AND endpoint IN ('CreateShipment', 'CreateNCShipment')
  AND started_at >= %(since)s
  -- this parcel's (0020: NULL before the migration, when an order had one shipment)
  AND (shipment_id IS NULL OR shipment_id = %(shipment_id)s)
ORDER BY call_id;

-- name: order_data_hash
SELECT md5(raw_order_data::text) FROM orders WHERE order_id = %(order_id)s;

-- name: labels_to_download
-- With verify (`labels download`): every bought label, to check each file against its sha256.
SELECT s.shipment_id, s.order_id, s.tracking_pin, s.cp_api_label_url, s.cp_label_media_type,
       s.label_pdf_path, s.label_pdf_sha256
FROM shipments s
WHERE s.status IN ('label_created', 'tracking_sent', 'tracking_updated', 'tracking_failed', 'order_canceled')
  AND s.tracking_pin IS NOT NULL
  AND (%(order_ids)s::text[] IS NULL OR s.order_id = ANY (%(order_ids)s::text[]))
ORDER BY s.shipment_id;

-- name: claim_next_download
-- The next bought label without its PDF, leased to this run while it is fetched (so two runs
-- never fetch the same label): walks shipments_download_queue_idx (sql/0007), not the table.
UPDATE shipments s
SET lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE s.shipment_id = (
    SELECT shipment_id
    FROM shipments
    WHERE label_pdf_path IS NULL
      AND tracking_pin IS NOT NULL
      AND status IN ('label_created', 'tracking_sent')
      AND (lease_owner IS NULL OR lease_expires_at < now() OR lease_owner = ANY (%(dead_owners)s::text[]))
      AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]))
      AND NOT (shipment_id = ANY (%(skip)s::bigint[]))
    ORDER BY shipment_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING s.shipment_id, s.order_id, s.tracking_pin, s.cp_api_label_url, s.cp_label_media_type

-- name: record_label_file
-- The PDF is on disk: the download's lease (if this run held one) is given up.
UPDATE shipments
SET label_pdf_path = %(path)s,
    label_pdf_sha256 = %(sha256)s,
    label_pdf_bytes = %(size)s,
    last_error = CASE WHEN last_error_code = 'label-download' THEN NULL ELSE last_error END,
    last_error_code = CASE WHEN last_error_code = 'label-download' THEN NULL ELSE last_error_code END,
    lease_owner = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_expires_at END
WHERE shipment_id = %(shipment_id)s

-- name: record_label_download_failed
-- The label stays bought; only its file is missing. status shows it, download fetches it later.
UPDATE shipments
SET last_error_code = 'label-download',
    last_error = %(error)s,
    lease_owner = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_expires_at END
WHERE shipment_id = %(shipment_id)s AND status = 'label_created'

-- name: make_retryable
UPDATE shipments
SET status = 'label_pending',
    last_error_code = NULL,
    last_error = NULL,
    failed_order_data_hash = NULL
WHERE order_id = ANY (%(order_ids)s::text[])
  AND status = ANY (%(statuses)s::text[])
  -- A shipment with a label, or with labels waiting for the seller's choice, is never re-bought.
  AND tracking_pin IS NULL
  AND NOT EXISTS (SELECT 1 FROM surplus_labels l
                  WHERE l.shipment_id = shipments.shipment_id AND l.resolved_at IS NULL)
  AND fulfil_shipment_move(shipment_id, 'retry_label', %(owner)s, %(run_id)s, %(reason)s)
RETURNING order_id;

-- name: shipment_states
SELECT s.shipment_id, s.order_id, s.status, s.last_error, s.last_error_code, o.status AS order_status
FROM shipments s
JOIN orders o ON o.order_id = s.order_id
WHERE s.order_id = ANY (%(order_ids)s::text[])
-- the caller keeps one row per order, the last: parcel 1's, for an order split into parcels
ORDER BY s.parcel_no DESC;

-- name: shipment_result
SELECT order_id, status, tracking_pin, label_pdf_path, last_error_code, last_error, warnings
FROM shipments
WHERE shipment_id = %(shipment_id)s;

-- name: count_eligible
-- How many orders a run would try to buy a label for (the size of the progress bar): accepted
-- orders without a shipment yet, and shipments waiting (each part on its own small index).
SELECT (SELECT count(*)
        FROM orders o
        WHERE o.status = 'accepted'
          AND NOT EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = o.order_id OFFSET 0)
          AND (%(order_ids)s::text[] IS NULL OR o.order_id = ANY (%(order_ids)s::text[])))
     + (SELECT count(*)
        FROM shipments s
        WHERE s.status = 'label_pending'
          -- a probe of the order per pending shipment (as in claim_next_purchase)
          AND EXISTS (SELECT 1 FROM orders o
                      WHERE o.order_id = s.order_id
                        AND fulfil_order_still_ships(o.status, s.shipped_at)
                      OFFSET 0)
          AND (%(order_ids)s::text[] IS NULL OR s.order_id = ANY (%(order_ids)s::text[]))) AS count;

-- name: dry_run_candidates
-- What `labels create` would buy: orders without a label yet and, when named, orders whose label
-- was given up (voided or refunded: replace_given_up_labels).
SELECT o.order_id, o.raw_order_data, s.cp_request_id, coalesce(s.status, 'no shipment yet') AS status,
       coalesce(s.parcel_no, 1) AS parcel_no, coalesce(s.parcel_count, 1) AS parcel_count, s.planned_parcel
FROM orders o
LEFT JOIN shipments s ON s.order_id = o.order_id
WHERE fulfil_order_still_ships(o.status, s.shipped_at)
  AND (s.shipment_id IS NULL
       OR s.status = 'label_pending'
       OR (%(order_ids)s::text[] IS NOT NULL AND s.status IN ('label_voided', 'refund_requested')))
  AND (%(order_ids)s::text[] IS NULL OR o.order_id = ANY (%(order_ids)s::text[]))
ORDER BY o.created_at, o.order_id, s.parcel_no
LIMIT %(limit)s;

-- name: parcel_of
SELECT parcel_no, parcel_count FROM shipments WHERE shipment_id = %(shipment_id)s;

-- name: purchase_key
SELECT cp_mode, cp_request_id, purchase_started_at, parcel_no, parcel_count
FROM shipments WHERE shipment_id = %(shipment_id)s;

-- name: shipment_of_order
SELECT status, tracking_pin, label_pdf_path, last_error FROM shipments
WHERE order_id = %(order_id)s AND parcel_no = 1;

-- name: assign_request_id
-- Shipments adopted from the older scripts have no customer-request-id yet.
UPDATE shipments
SET cp_request_id = coalesce(cp_request_id, 'F' || replace(gen_random_uuid()::text, '-', ''))
WHERE shipment_id = %(shipment_id)s
RETURNING cp_request_id;

-- name: requested_order_states
-- Where each order asked for by id stands, to say why a run did not touch it.
SELECT r.order_id, o.status AS order_status, s.status AS shipment_status, s.tracking_pin, s.label_pdf_path
FROM unnest(%(order_ids)s::text[]) AS r(order_id)
LEFT JOIN orders o ON o.order_id = r.order_id
LEFT JOIN shipments s ON s.order_id = r.order_id AND s.parcel_no = 1;

-- name: orders_by_id
-- The orders named (`fulfil labels quote`), whatever their state: a quote buys nothing.
SELECT order_id, status, raw_order_data
FROM orders
WHERE order_id = ANY (%(order_ids)s::text[]);

-- name: hold_purchase_lease_recording_choice
-- hold_purchase_lease for an attempt whose request carries a decision (0019: parcel, service,
-- rule, options): the decision is written in the same statement that records the attempt, so a
-- label is always read back with the decision it was bought under, and nothing is written for a
-- claim that is no longer this run's (nothing is sent for it either). The UPDATE locks the row
-- as FOR UPDATE does.
UPDATE shipments
SET service_code = %(service_code)s, service_rule = %(service_rule)s, label_choice = %(label_choice)s
WHERE shipment_id = %(shipment_id)s
  AND status = 'label_creation_initiated'
  AND lease_owner = %(owner)s
RETURNING shipment_id;

-- name: hold_purchase_lease
-- Run by the audit log in the transaction that records a Create Shipment attempt, before it is
-- sent: the attempt goes out only while this run still holds the claim. The row lock makes a
-- takeover wait for the record (and then see it) or win (and then this attempt is never sent).
SELECT shipment_id
FROM shipments
WHERE shipment_id = %(shipment_id)s
  AND status = 'label_creation_initiated'
  AND lease_owner = %(owner)s
FOR UPDATE;

-- name: purchase_settles_at
-- When the absence of this purchase at Canada Post proves it was never bought: its last attempt's
-- deadline plus the time Canada Post is given to finish what it received (for rows older than
-- deadline_at: its start plus this host's settle window, audit.retry.settle_seconds). NULL: no
-- attempt was ever recorded.
SELECT max(coalesce(deadline_at + make_interval(secs => %(allowance)s),
                    started_at + make_interval(secs => %(settle_seconds)s))) AS settles_at,
       max(started_at) AS last_started_at,
       clock_timestamp() AS now
FROM api_calls
WHERE related_id = %(order_id)s
  AND service = 'CanadaPost'
  AND endpoint IN ('CreateShipment', 'CreateNCShipment')
  AND started_at >= %(since)s
  -- this parcel's (0020: NULL before the migration, when an order had one shipment)
  AND (shipment_id IS NULL OR shipment_id = %(shipment_id)s);

-- name: database_now
SELECT clock_timestamp() AS now;

-- name: lock_shipment_label
-- The label a shipment holds, locked: deciding where a purchase that lost its claim goes.
SELECT shipment_id, order_id, status, tracking_pin, cp_shipment_id, lease_owner
FROM shipments
WHERE shipment_id = %(shipment_id)s
FOR UPDATE;

-- name: record_label_bought_after_takeover
-- A purchase that succeeded after another run took its claim over, on a shipment that holds no
-- label yet: it is recorded all the same (it was paid for). The other run's own writes are
-- compare-and-set on its lease, which this clears, so they find the label here.
UPDATE shipments
SET status = 'label_created',
    tracking_pin = %(tracking_pin)s,
    cp_shipment_id = %(cp_shipment_id)s,
    cp_self_url = %(cp_self_url)s,
    cp_api_label_url = %(cp_label_url)s,
    cp_label_media_type = %(cp_label_media_type)s,
    cp_mode = coalesce(cp_mode, %(cp_mode)s),
    cp_group_id = %(cp_group_id)s,
    label_created_at = now(),
    last_error = NULL,
    last_error_code = NULL,
    failed_order_data_hash = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND cp_shipment_id IS NULL
  AND fulfil_shipment_move(%(shipment_id)s, 'record_purchase_after_takeover', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- name: record_surplus_label
INSERT INTO surplus_labels (order_id, shipment_id, cp_shipment_id, tracking_pin, cp_self_url,
                            cp_label_url, found_by_run, call_id, reason)
VALUES (%(order_id)s, %(shipment_id)s, %(cp_shipment_id)s, %(tracking_pin)s, %(cp_self_url)s,
        %(cp_label_url)s, %(run_id)s, %(call_id)s, %(reason)s)
ON CONFLICT DO NOTHING;

-- name: park_for_two_labels
-- A second label for a shipment whose label was not pushed to Best Buy yet: nothing more happens
-- to it until the seller has chosen one and voided the other.
UPDATE shipments
SET status = 'needs_review',
    last_error_code = 'two-labels',
    last_error = %(error)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND (status = 'needs_review' OR fulfil_shipment_move(%(shipment_id)s, 'park_two_labels', %(owner)s, %(run_id)s, %(reason)s))
RETURNING shipment_id;

-- name: label_choice
-- What `labels keep` chooses between: the shipment's own label and its open surplus labels.
-- For an order split into parcels (0020): the parcel that holds the label named, else the one
-- with labels to choose between (so a label of none is refused naming the choices).
SELECT s.shipment_id, s.order_id, s.status, s.last_error_code, s.cp_shipment_id, s.tracking_pin,
       s.cp_self_url, s.cp_api_label_url, s.cp_label_media_type, s.parcel_no, s.parcel_count,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'cp_shipment_id', l.cp_shipment_id, 'tracking_pin', l.tracking_pin,
                   'cp_self_url', l.cp_self_url, 'cp_label_url', l.cp_label_url) ORDER BY l.surplus_id), '[]')
        FROM surplus_labels l
        WHERE l.shipment_id = s.shipment_id AND l.resolved_at IS NULL) AS surplus
FROM shipments s
WHERE s.order_id = %(order_id)s
ORDER BY s.cp_shipment_id IS NOT DISTINCT FROM %(kept)s
             OR EXISTS (SELECT 1 FROM surplus_labels k
                        WHERE k.shipment_id = s.shipment_id AND k.cp_shipment_id = %(kept)s
                          AND k.resolved_at IS NULL) DESC,
         EXISTS (SELECT 1 FROM surplus_labels o WHERE o.shipment_id = s.shipment_id AND o.resolved_at IS NULL) DESC,
         s.parcel_no
LIMIT 1
FOR UPDATE OF s;

-- name: resolve_surplus_labels
-- The seller kept one label and voided the others at Canada Post.
UPDATE surplus_labels
SET resolved_at = now(), resolution = %(resolution)s
WHERE shipment_id = %(shipment_id)s
  AND resolved_at IS NULL
  AND cp_shipment_id IS DISTINCT FROM %(kept)s;

-- name: mark_surplus_kept
UPDATE surplus_labels
SET resolved_at = now(), resolution = 'kept: now the shipment''s label'
WHERE shipment_id = %(shipment_id)s AND cp_shipment_id = %(kept)s AND resolved_at IS NULL;

-- name: retire_recorded_label
-- The label the shipment held was not kept: it goes to surplus_labels, already resolved.
INSERT INTO surplus_labels (order_id, shipment_id, cp_shipment_id, tracking_pin, cp_self_url,
                            cp_label_url, found_by_run, reason, resolved_at, resolution)
SELECT order_id, shipment_id, cp_shipment_id, tracking_pin, cp_self_url, cp_api_label_url, %(run_id)s,
       'recorded on the shipment until the seller kept another label', now(), %(resolution)s
FROM shipments
WHERE shipment_id = %(shipment_id)s AND cp_shipment_id IS NOT NULL
ON CONFLICT DO NOTHING;

-- name: take_kept_label
-- The shipment now holds the label the seller kept; its PDF is fetched by `labels download`.
UPDATE shipments
SET status = 'label_created',
    tracking_pin = %(tracking_pin)s,
    cp_shipment_id = %(cp_shipment_id)s,
    cp_self_url = %(cp_self_url)s,
    -- another label's group is not known here
    cp_group_id = CASE WHEN cp_shipment_id IS DISTINCT FROM %(cp_shipment_id)s THEN NULL ELSE cp_group_id END,
    cp_api_label_url = %(cp_label_url)s,
    label_pdf_path = CASE WHEN cp_shipment_id IS DISTINCT FROM %(cp_shipment_id)s THEN NULL ELSE label_pdf_path END,
    label_pdf_sha256 = CASE WHEN cp_shipment_id IS DISTINCT FROM %(cp_shipment_id)s THEN NULL ELSE label_pdf_sha256 END,
    label_pdf_bytes = CASE WHEN cp_shipment_id IS DISTINCT FROM %(cp_shipment_id)s THEN NULL ELSE label_pdf_bytes END,
    label_created_at = coalesce(label_created_at, now()),
    last_error = NULL,
    last_error_code = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND fulfil_shipment_move(%(shipment_id)s, 'keep_label', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- ============================================================================================
-- Pushing tracking to Best Buy (fulfil tracking push, retry)
-- ============================================================================================

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
      -- Best Buy takes one tracking number per order: a split order's first parcel's (0020),
      -- once every parcel has its label
      AND parcel_no = 1
      AND (parcel_count = 1 OR fulfil_every_parcel_labelled(order_id))
      AND (lease_owner IS NULL OR lease_expires_at < now()
           OR lease_owner = ANY (%(dead_owners)s::text[]))
      AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]))
      AND NOT (shipment_id = ANY (%(skip)s::bigint[]))
    ORDER BY status = 'tracking_sent' DESC, label_created_at NULLS FIRST, shipment_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING s.shipment_id, s.order_id, s.status, s.tracking_pin, s.label_pdf_path, s.label_pdf_sha256,
          s.shipped_at IS NOT NULL AS shipped_before, s.parcel_count,
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
  AND fulfil_shipment_move(%(shipment_id)s, 'record_tracking_sent', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- name: record_shipment_shipped
-- Best Buy has the order as shipped (OR24 answered 204, or OR11 shows it shipped): the shipment
-- tracking_updated and the order shipped, in one statement. Best Buy's word that the order
-- shipped is fresher than any copy imported before, so it holds even over a 'canceled' read.
WITH moved AS (
    UPDATE shipments
    SET status = 'tracking_updated',
        tracking_sent_at = coalesce(tracking_sent_at, now()),
        shipped_at = coalesce(shipped_at, now()),
        last_error = NULL,
        last_error_code = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL
    WHERE shipment_id = %(shipment_id)s
      AND fulfil_shipment_move(%(shipment_id)s, 'record_shipped', %(owner)s, %(run_id)s, %(reason)s)
    RETURNING order_id
), order_shipped AS (
    UPDATE orders
    SET status = 'shipped'
    FROM moved
    WHERE orders.order_id = moved.order_id
      AND orders.status IS DISTINCT FROM 'shipped'
)
SELECT order_id FROM moved

-- name: record_retracked
-- The replacement label of an order Best Buy had confirmed shipped: Best Buy took its tracking
-- number (OR23), and no second ship confirmation is sent (shipped_at is the first one's).
UPDATE shipments
SET status = 'tracking_updated',
    tracking_sent_at = now(),
    last_error = NULL,
    last_error_code = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND shipped_at IS NOT NULL
  AND fulfil_shipment_move(%(shipment_id)s, 'record_retracked', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- name: record_shipment_canceled
-- The order was cancelled (or refused) on Best Buy although a label exists for it: the shipment
-- order_canceled (its label needs voiding) and the order canceled, in one statement.
WITH moved AS (
    UPDATE shipments
    SET status = 'order_canceled',
        last_error_code = %(code)s,
        last_error = %(error)s,
        lease_owner = NULL,
        lease_expires_at = NULL
    WHERE shipment_id = %(shipment_id)s
      AND fulfil_shipment_move(%(shipment_id)s, 'record_canceled', %(owner)s, %(run_id)s, %(reason)s)
    RETURNING order_id
), order_canceled AS (
    UPDATE orders
    SET status = 'canceled'
    FROM moved
    WHERE orders.order_id = moved.order_id
      AND orders.status IS DISTINCT FROM 'shipped'
      AND orders.status IS DISTINCT FROM 'canceled'
)
SELECT order_id FROM moved

-- name: follow_first_parcels
-- The other parcels of split orders (0020) follow their first parcel once Best Buy has settled it:
-- shipped with it (Best Buy has the order as shipped, under parcel 1's number) or canceled with
-- it (their labels need voiding too). A parcel whose PDF is being fetched (leased) follows on the
-- next run. Walks shipments_followers_idx (the few waiting).
UPDATE shipments s
SET status = CASE WHEN f.status = 'tracking_updated' THEN 'tracking_updated' ELSE 'order_canceled' END,
    tracking_sent_at = CASE WHEN f.status = 'tracking_updated' THEN coalesce(s.tracking_sent_at, now())
                            ELSE s.tracking_sent_at END,
    shipped_at = CASE WHEN f.status = 'tracking_updated' THEN coalesce(s.shipped_at, f.shipped_at, now())
                      ELSE s.shipped_at END,
    last_error_code = CASE WHEN f.status = 'tracking_updated' THEN NULL ELSE f.last_error_code END,
    last_error = CASE WHEN f.status = 'tracking_updated' THEN NULL
                      ELSE 'parcel ' || s.parcel_no || ' of ' || s.parcel_count || ': ' || f.last_error END
FROM shipments f
WHERE s.parcel_no > 1
  AND s.status = 'label_created'
  AND (s.lease_owner IS NULL OR s.lease_expires_at < now())
  AND (%(order_ids)s::text[] IS NULL OR s.order_id = ANY (%(order_ids)s::text[]))
  AND f.order_id = s.order_id
  AND f.parcel_no = 1
  AND f.status IN ('tracking_updated', 'order_canceled')
  AND fulfil_shipment_move(s.shipment_id,
                           CASE WHEN f.status = 'tracking_updated' THEN 'ship_with_first_parcel'
                                ELSE 'cancel_with_first_parcel' END,
                           %(owner)s, %(run_id)s,
                           'parcel 1 of the order ' || CASE WHEN f.status = 'tracking_updated'
                               THEN 'is shipped on Best Buy (tracking ' || f.tracking_pin || ')'
                               ELSE 'was canceled on Best Buy' END)
RETURNING s.shipment_id, s.order_id, s.parcel_no, s.status;

-- name: other_parcels
-- The other parcels of one split order, to say where their labels are.
SELECT parcel_no, parcel_count, status, tracking_pin
FROM shipments
WHERE order_id = %(order_id)s AND parcel_no > 1
ORDER BY parcel_no;

-- name: record_tracking_failed
UPDATE shipments
SET status = 'tracking_failed',
    last_error_code = %(code)s,
    last_error = %(error)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND fulfil_shipment_move(%(shipment_id)s, 'refuse_push', %(owner)s, %(run_id)s, %(reason)s)
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

-- name: count_pushable
SELECT count(*)
FROM shipments
WHERE status IN ('label_created', 'tracking_sent')
  AND tracking_pin IS NOT NULL
  AND parcel_no = 1
  AND (parcel_count = 1 OR fulfil_every_parcel_labelled(order_id))
  AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]));

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
  AND fulfil_shipment_move(shipment_id, 'retry_push', %(owner)s, %(run_id)s, %(reason)s)
RETURNING order_id, status;

-- name: push_states
-- The shipment Best Buy hears about (a split order's first parcel), and how many of the order's
-- other parcels have no label yet.
SELECT s.shipment_id, s.order_id, s.status, s.tracking_pin, s.last_error, s.lease_owner,
       s.lease_expires_at > now() AS leased, s.parcel_count,
       (SELECT count(*) FROM shipments o
        WHERE o.order_id = s.order_id AND o.parcel_no > 1
          AND o.status NOT IN ('label_created', 'tracking_updated')) AS parcels_without_label
FROM shipments s
WHERE s.order_id = ANY (%(order_ids)s::text[])
  AND s.parcel_no = 1;

-- name: push_dry_run_candidates
SELECT order_id, status, tracking_pin, shipped_at IS NOT NULL AS shipped_before
FROM shipments
WHERE status IN ('label_created', 'tracking_sent')
  AND tracking_pin IS NOT NULL
  AND parcel_no = 1
  AND (parcel_count = 1 OR fulfil_every_parcel_labelled(order_id))
  AND (%(order_ids)s::text[] IS NULL OR order_id = ANY (%(order_ids)s::text[]))
ORDER BY status = 'tracking_sent' DESC, label_created_at NULLS FIRST, shipment_id
LIMIT %(limit)s;

-- ============================================================================================
-- Voiding labels (fulfil labels void)
-- ============================================================================================

-- name: void_standing
-- Where each order asked to be voided stands: what `labels void` (and its dry run) decides from,
-- and says when it leaves an order alone. In the order asked.
SELECT r.order_id, o.status AS order_status, s.shipment_id, s.status, s.cp_mode, s.cp_shipment_id,
       s.tracking_pin, s.cp_self_url, s.label_pdf_path, s.last_error, s.lease_owner,
       coalesce(s.lease_expires_at > now(), false) AS leased, s.voided_at, s.refund_requested_at,
       s.refund_ticket_id, s.refund_ticket_date, s.void_reason, s.void_from_status, s.parcel_count
FROM unnest(%(order_ids)s::text[]) WITH ORDINALITY AS r(order_id, position)
LEFT JOIN orders o ON o.order_id = r.order_id
-- An order split into parcels (0020) is refused by its parcel 1 (fulfil/workflows/labels/void.py).
LEFT JOIN shipments s ON s.order_id = r.order_id AND s.parcel_no = 1
ORDER BY r.position;

-- name: canceled_to_void
-- `labels void --canceled`: the labels of orders canceled on Best Buy (a few; shipments_attention_idx).
-- A split order's parcels are voided by hand (labels void refuses them): never listed, so a cron
-- run is not told so again each night.
SELECT order_id FROM shipments WHERE status = 'order_canceled' AND parcel_count = 1 ORDER BY shipment_id;

-- name: voids_left_unfinished
-- Voids whose outcome is not recorded (a run killed mid-call, an answer not settled yet), oldest
-- first: shipments_voiding_idx.
SELECT order_id FROM shipments WHERE status = 'label_voiding' ORDER BY void_started_at;

-- name: owners_of_voidable
-- Who holds a lease on these orders' shipments (a push or download in flight, a void), so a
-- claim can take over from an owner that is provably dead on this host.
SELECT DISTINCT lease_owner
FROM shipments
WHERE order_id = ANY (%(order_ids)s::text[]) AND lease_owner IS NOT NULL;

-- name: claim_void
-- The void's intent, committed before anything is sent: label_voiding with this run's lease and
-- the state it started from (to go back to if it is proven not done). Only a label fulfil bought
-- (cp_mode: it knows which Canada Post API sold it) whose lease is free or whose owner is gone: a
-- push or a download in flight keeps it. fulfil_shipment_move() refuses every state start_void
-- does not start from.
UPDATE shipments s
SET status = 'label_voiding',
    void_from_status = s.status,
    void_started_at = now(),
    lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    last_error = NULL,
    last_error_code = NULL
WHERE s.shipment_id = (
        SELECT shipment_id
        FROM shipments
        WHERE order_id = %(order_id)s
          AND cp_mode IS NOT NULL
          AND tracking_pin IS NOT NULL
          AND (lease_owner IS NULL OR lease_expires_at < now() OR lease_owner = ANY (%(dead_owners)s::text[]))
        FOR UPDATE SKIP LOCKED
    )
  AND fulfil_shipment_move(s.shipment_id, 'start_void', %(owner)s, %(run_id)s, %(reason)s)
RETURNING s.shipment_id, s.order_id, s.cp_mode, s.cp_shipment_id, s.tracking_pin, s.cp_self_url,
          s.label_pdf_path, s.void_from_status, s.void_started_at, false AS left_unfinished;

-- name: claim_unfinished_void
-- A void left in label_voiding by a run that is gone (or that could not settle it): leased to
-- this run, which settles it by reading before anything is sent again.
UPDATE shipments s
SET lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE s.shipment_id = (
    SELECT shipment_id
    FROM shipments
    WHERE order_id = %(order_id)s
      AND status = 'label_voiding'
      AND (lease_owner IS NULL OR lease_expires_at < now() OR lease_owner = ANY (%(dead_owners)s::text[]))
    FOR UPDATE SKIP LOCKED
)
RETURNING s.shipment_id, s.order_id, s.cp_mode, s.cp_shipment_id, s.tracking_pin, s.cp_self_url,
          s.label_pdf_path, s.void_from_status, s.void_started_at, true AS left_unfinished;

-- name: hold_void_lease
-- Run by the audit log in the transaction that records a void or refund attempt, before it is
-- sent: it goes out only while this run still holds the void.
SELECT shipment_id
FROM shipments
WHERE shipment_id = %(shipment_id)s
  AND status = 'label_voiding'
  AND lease_owner = %(owner)s
FOR UPDATE;

-- name: extend_void_lease
-- Before each request of a void: the claim lasts for that request and the reads that may follow.
UPDATE shipments
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE shipment_id = %(shipment_id)s
  AND status = 'label_voiding'
  AND lease_owner = %(owner)s
RETURNING shipment_id;

-- name: void_calls
-- The void and refund requests of the void in flight, oldest first (an answer that arrived but
-- was never recorded on the shipment is settled from here).
SELECT call_id, endpoint, status_code, is_success, failure_class, response_body, finished_at
FROM api_calls
WHERE related_id = %(order_id)s
  AND service = 'CanadaPost'
  AND endpoint IN ('VoidShipment', 'RefundShipment', 'RefundNCShipment')
  AND started_at >= %(since)s
  AND (shipment_id IS NULL OR shipment_id = %(shipment_id)s)
ORDER BY call_id;

-- name: record_label_voided
-- Canada Post voided it (204), or no longer has it: label_voided, and the label in label_history,
-- in one statement.
WITH moved AS (
    UPDATE shipments
    SET status = 'label_voided',
        voided_at = now(),
        void_reason = %(reason)s,
        label_pdf_path = %(label_pdf_path)s,
        void_from_status = NULL,
        last_error = NULL,
        last_error_code = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL
    WHERE shipment_id = %(shipment_id)s
      AND fulfil_shipment_move(%(shipment_id)s, 'record_voided', %(owner)s, %(run_id)s, %(reason)s)
    RETURNING shipment_id, order_id, cp_mode, cp_shipment_id, tracking_pin, cp_self_url, label_pdf_path,
              label_created_at, voided_at, void_reason
), history AS (
    INSERT INTO label_history (shipment_id, order_id, cp_mode, cp_shipment_id, tracking_pin, cp_self_url,
                               label_pdf_path, label_created_at, outcome, voided_at, reason, run_id)
    SELECT shipment_id, order_id, cp_mode, cp_shipment_id, tracking_pin, cp_self_url, label_pdf_path,
           label_created_at, 'voided', voided_at, void_reason, %(run_id)s
    FROM moved
)
SELECT shipment_id FROM moved;

-- name: record_label_refund_requested
-- Canada Post took the refund request (or had one already): refund_requested with its service
-- ticket when it gave one, and the label in label_history, in one statement.
WITH moved AS (
    UPDATE shipments
    SET status = 'refund_requested',
        refund_requested_at = now(),
        refund_ticket_id = %(ticket_id)s,
        refund_ticket_date = %(ticket_date)s,
        void_reason = %(reason)s,
        label_pdf_path = %(label_pdf_path)s,
        void_from_status = NULL,
        last_error = NULL,
        last_error_code = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL
    WHERE shipment_id = %(shipment_id)s
      AND fulfil_shipment_move(%(shipment_id)s, 'record_refund_requested', %(owner)s, %(run_id)s, %(reason)s)
    RETURNING shipment_id, order_id, cp_mode, cp_shipment_id, tracking_pin, cp_self_url, label_pdf_path,
              label_created_at, refund_requested_at, refund_ticket_id, refund_ticket_date, void_reason
), history AS (
    INSERT INTO label_history (shipment_id, order_id, cp_mode, cp_shipment_id, tracking_pin, cp_self_url,
                               label_pdf_path, label_created_at, outcome, refund_requested_at,
                               refund_ticket_id, refund_ticket_date, reason, run_id)
    SELECT shipment_id, order_id, cp_mode, cp_shipment_id, tracking_pin, cp_self_url, label_pdf_path,
           label_created_at, 'refund_requested', refund_requested_at, refund_ticket_id, refund_ticket_date,
           void_reason, %(run_id)s
    FROM moved
)
SELECT shipment_id FROM moved;

-- name: release_void
-- Proven not done (nothing sent, refused, or Canada Post still has the label): back to where the
-- void started, with the reason. The move is named after that state (release_void_to_…); CASE
-- keeps a row without one from naming no move at all.
UPDATE shipments
SET status = void_from_status,
    last_error_code = %(code)s,
    last_error = %(error)s,
    void_from_status = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND CASE WHEN void_from_status IS NULL THEN false
           ELSE fulfil_shipment_move(%(shipment_id)s, 'release_void_to_' || void_from_status,
                                     %(owner)s, %(run_id)s, %(reason)s)
      END
RETURNING shipment_id, status;

-- name: park_void
-- What Canada Post shows contradicts what fulfil recorded: a person looks.
UPDATE shipments
SET status = 'needs_review',
    last_error_code = %(code)s,
    last_error = %(error)s,
    void_from_status = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE shipment_id = %(shipment_id)s
  AND fulfil_shipment_move(%(shipment_id)s, 'park_void', %(owner)s, %(run_id)s, %(reason)s)
RETURNING shipment_id;

-- name: leave_void_unsettled
-- The outcome is unknown and Canada Post could not be read: the void stays label_voiding (the run's
-- end releases its lease) and the next `labels void` settles it by reading.
UPDATE shipments
SET last_error_code = %(code)s,
    last_error = %(error)s
WHERE shipment_id = %(shipment_id)s
  AND status = 'label_voiding'
  AND lease_owner = %(owner)s
RETURNING shipment_id;

-- ============================================================================================
-- Every run
-- ============================================================================================

-- name: release_leases
-- At the end of a run (finished, stopped by a signal, or failed): no claim outlives the process
-- that made it, so another run or host takes the work at once instead of waiting for the lease.
-- Purchases whose answer is unknown stay label_creation_initiated; their settle window, not the
-- lease, keeps them from being bought again too early.
UPDATE shipments
SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner = %(owner)s
RETURNING shipment_id;

-- name: replace_given_up_labels
-- `labels create --order X` for an order that still ships after its label was voided or refunded:
-- the shipment goes back to label_pending without the label it gave up (kept in label_history,
-- its cost in label_costs), for a new label under a new customer-request-id (the claim makes one).
-- Its print mark goes too: the new label is printed on its own. The given-up label's tracking row
-- goes with it (its parcel never travelled): the new label's PIN makes a fresh one (0009's trigger).
WITH replaced AS (
    UPDATE shipments s
    SET status = 'label_pending',
        tracking_pin = NULL,
        cp_shipment_id = NULL,
        cp_self_url = NULL,
        cp_api_label_url = NULL,
        cp_label_media_type = NULL,
        cp_request_id = NULL,
        label_pdf_path = NULL,
        label_pdf_sha256 = NULL,
        label_pdf_bytes = NULL,
        label_print_id = NULL,
        cp_group_id = NULL,
        voided_at = NULL,
        refund_requested_at = NULL,
        refund_ticket_id = NULL,
        refund_ticket_date = NULL,
        void_reason = NULL,
        last_error = NULL,
        last_error_code = NULL,
        -- The new label is decided afresh (its claim records what it is bought as).
        service_code = NULL,
        service_rule = NULL,
        label_choice = NULL
    FROM orders o
    WHERE s.order_id = ANY (%(order_ids)s::text[])
      AND s.status IN ('label_voided', 'refund_requested')
      AND o.order_id = s.order_id
      -- A shipped order too, when it was this shipment Best Buy confirmed (its parcel never left).
      AND fulfil_order_still_ships(o.status, s.shipped_at)
      AND fulfil_shipment_move(s.shipment_id, 'replace_label', %(owner)s, %(run_id)s,
                               'a new label replaces the one given up (' || s.tracking_pin || ')')
    RETURNING s.shipment_id, s.order_id
), forgotten AS (
    DELETE FROM carrier_tracking t USING replaced r WHERE t.shipment_id = r.shipment_id
)
SELECT order_id FROM replaced;
