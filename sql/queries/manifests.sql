-- Named queries for end-of-day manifests (fulfil/manifests/store.py; tables in sql/0014_manifests.sql).

-- ============================================================================================
-- Transmits: the intent, committed before Transmit Shipments is sent
-- ============================================================================================

-- name: claim_transmit
-- The intent to transmit a group, with this run's lease: one statement, and none while another
-- transmit of the group is in flight or unsettled (manifest_transmits_one_in_flight_idx).
INSERT INTO manifest_transmits (group_id, manifest_date, lease_owner, lease_expires_at, run_id)
VALUES (%(group_id)s, %(manifest_date)s, %(owner)s, now() + make_interval(secs => %(lease_seconds)s), %(run_id)s)
ON CONFLICT (group_id) WHERE status = 'sending' DO NOTHING
RETURNING transmit_id, group_id, manifest_date, started_at, included, excluded;

-- name: transmit_in_flight
-- The group's transmit in flight or unsettled, if any, and whether its lease still holds.
SELECT transmit_id, group_id, manifest_date, started_at, lease_owner,
       coalesce(lease_expires_at > now(), false) AS leased, error
FROM manifest_transmits
WHERE group_id = %(group_id)s AND status = 'sending';

-- name: owners_of_unsettled
-- Who holds the transmits in flight, so one whose owner is provably dead on this host is taken
-- over at once rather than when its lease runs out.
SELECT DISTINCT lease_owner FROM manifest_transmits WHERE status = 'sending' AND lease_owner IS NOT NULL;

-- name: claim_unsettled
-- A transmit left in flight by a run that is gone (lease expired or released, or its owner dead):
-- leased to this run, which settles it by reading before anything is sent again. Oldest first;
-- with a group, only that group's.
UPDATE manifest_transmits t
SET lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    run_id = coalesce(%(run_id)s, t.run_id)
WHERE t.transmit_id = (
    SELECT transmit_id
    FROM manifest_transmits
    WHERE status = 'sending'
      AND (%(group_id)s::text IS NULL OR group_id = %(group_id)s)
      AND (lease_owner IS NULL OR lease_expires_at < now() OR lease_owner = ANY (%(dead_owners)s::text[]))
      AND NOT (transmit_id = ANY (%(skip)s::bigint[]))
    ORDER BY transmit_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING t.transmit_id, t.group_id, t.manifest_date, t.started_at, t.included, t.excluded;

-- name: hold_transmit_lease
-- Run by the audit log in the transaction that records a Transmit Shipments attempt, before it is
-- sent: the attempt goes out only while this run still holds the transmit.
SELECT transmit_id
FROM manifest_transmits
WHERE transmit_id = %(transmit_id)s
  AND status = 'sending'
  AND lease_owner = %(owner)s
FOR UPDATE;

-- name: extend_transmit_lease
UPDATE manifest_transmits
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE transmit_id = %(transmit_id)s AND status = 'sending' AND lease_owner = %(owner)s
RETURNING transmit_id;

-- name: record_transmit_plan
-- What the transmit is to send and leave out, committed before it is sent.
UPDATE manifest_transmits
SET included = %(included)s, excluded = %(excluded)s
WHERE transmit_id = %(transmit_id)s AND status = 'sending' AND lease_owner = %(owner)s
RETURNING transmit_id;

-- name: drop_unsent_transmit
-- A transmit whose request was never sent (nothing to send, or Canada Post could not be read
-- first): nothing happened, so nothing is kept but its reads in api_calls. Refused while any
-- Transmit Shipments request of it is on record.
DELETE FROM manifest_transmits t
WHERE t.transmit_id = %(transmit_id)s
  AND t.status = 'sending'
  AND t.lease_owner = %(owner)s
  AND NOT EXISTS (
      SELECT 1 FROM api_calls a
      WHERE a.related_id = t.group_id AND a.endpoint = 'TransmitShipments' AND a.started_at >= t.started_at)
RETURNING transmit_id;

-- name: release_transmit
-- Settled without a manifest: 'not_sent' (provably not sent, refused at the door, or proven
-- absent at Canada Post) or 'refused' (Canada Post said no). Final; the group may be sent again.
UPDATE manifest_transmits
SET status = %(status)s,
    error = %(error)s,
    settled_at = now(),
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE transmit_id = %(transmit_id)s AND status = 'sending' AND lease_owner = %(owner)s
RETURNING transmit_id;

-- name: leave_transmit_unsettled
-- The outcome is not known yet: the transmit stays in flight, unleased, and the next run settles
-- it by reading (a new transmit of the group waits for it).
UPDATE manifest_transmits
SET error = %(error)s, lease_owner = NULL, lease_expires_at = NULL
WHERE transmit_id = %(transmit_id)s AND status = 'sending' AND lease_owner = %(owner)s
RETURNING transmit_id;

-- name: settle_transmitted
-- Canada Post made manifests for it (its answer, or a look-up found them): final.
UPDATE manifest_transmits
SET status = 'transmitted',
    found_by = %(found_by)s,
    error = NULL,
    settled_at = now(),
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE transmit_id = %(transmit_id)s AND status = 'sending' AND lease_owner = %(owner)s
RETURNING transmit_id;

-- name: insert_manifest
-- In the transaction of settle_transmitted. A manifest recorded already keeps its row.
INSERT INTO manifests (transmit_id, cp_manifest_id, manifest_url, found_by)
VALUES (%(transmit_id)s, %(cp_manifest_id)s, %(manifest_url)s, %(found_by)s)
ON CONFLICT (cp_manifest_id) DO NOTHING
RETURNING manifest_id;

-- name: transmit_calls
-- The Transmit Shipments requests of a transmit (its group's, since it started), oldest first:
-- the evidence a transmit left by another run is settled from.
SELECT call_id, status_code, is_success, failure_class, response_body, response_truncated,
       finished_at IS NOT NULL AS finished
FROM api_calls
WHERE related_id = %(group_id)s
  AND service = 'CanadaPost'
  AND endpoint = 'TransmitShipments'
  AND started_at >= %(since)s
ORDER BY call_id;

-- name: transmit_settles
-- When the absence of a transmit's manifests at Canada Post proves it never happened: every
-- attempt past its deadline (recorded with it) and Canada Post's allowance to make what it
-- received visible; and the database's now, to compare with.
SELECT coalesce(max(coalesce(deadline_at, started_at + make_interval(secs => %(deadline_seconds)s))),
                %(since)s::timestamptz + make_interval(secs => %(deadline_seconds)s))
           + make_interval(secs => %(allowance_seconds)s) AS settles_at,
       clock_timestamp() AS now
FROM api_calls
WHERE related_id = %(group_id)s
  AND service = 'CanadaPost'
  AND endpoint = 'TransmitShipments'
  AND started_at >= %(since)s;

-- ============================================================================================
-- What a group holds: Canada Post's list, against what fulfil recorded
-- ============================================================================================

-- name: listed_shipments
-- Each Canada Post shipment of a group's listing, in the order listed, with what fulfil knows of
-- it: its shipment and order (none: not a label fulfil recorded), an unresolved surplus label,
-- and the manifest it is on already.
SELECT l.cp_shipment_id, s.shipment_id, s.order_id, s.status, o.status AS order_status,
       su.surplus_id IS NOT NULL AS surplus, ms.manifest_id AS on_manifest
FROM unnest(%(cp_shipment_ids)s::text[]) WITH ORDINALITY AS l(cp_shipment_id, position)
LEFT JOIN shipments s ON s.cp_shipment_id = l.cp_shipment_id
LEFT JOIN orders o ON o.order_id = s.order_id
LEFT JOIN surplus_labels su ON su.cp_shipment_id = l.cp_shipment_id AND su.resolved_at IS NULL
LEFT JOIN manifest_shipments ms ON ms.cp_shipment_id = l.cp_shipment_id
ORDER BY l.position;

-- name: known_manifests
SELECT cp_manifest_id FROM manifests WHERE cp_manifest_id = ANY (%(cp_manifest_ids)s::text[]);

-- ============================================================================================
-- Manifests: Get Manifest read, shipments listed, PDF saved
-- ============================================================================================

-- name: record_manifest_read
UPDATE manifests
SET po_number = %(po_number)s,
    details_url = %(details_url)s,
    shipments_url = %(shipments_url)s,
    artifact_url = %(artifact_url)s,
    artifact_media_type = %(artifact_media_type)s,
    read_at = now(),
    last_error = NULL
WHERE manifest_id = %(manifest_id)s
RETURNING manifest_id;

-- name: record_manifest_shipments
-- The shipments on a manifest, for good (manifest_shipments), and each of fulfil's shipments
-- whose current label it is marked transmitted on it: one statement.
WITH listed AS (
    SELECT DISTINCT unnest(%(cp_shipment_ids)s::text[]) AS cp_shipment_id
), kept AS (
    INSERT INTO manifest_shipments (cp_shipment_id, manifest_id, shipment_id)
    SELECT l.cp_shipment_id, %(manifest_id)s, s.shipment_id
    FROM listed l
    LEFT JOIN shipments s ON s.cp_shipment_id = l.cp_shipment_id
    ON CONFLICT (cp_shipment_id) DO NOTHING
    RETURNING cp_shipment_id
), marked AS (
    UPDATE shipments s
    SET manifest_id = %(manifest_id)s, transmitted_at = now()
    FROM listed l
    WHERE s.cp_shipment_id = l.cp_shipment_id AND s.manifest_id IS NULL
    RETURNING s.shipment_id
)
UPDATE manifests m
SET shipments_listed_at = now(),
    shipment_count = (SELECT count(*) FROM listed),
    last_error = NULL
WHERE m.manifest_id = %(manifest_id)s
RETURNING (SELECT count(*) FROM marked) AS marked,
          (SELECT count(*) FROM listed l
           WHERE NOT EXISTS (SELECT 1 FROM shipments s WHERE s.cp_shipment_id = l.cp_shipment_id)) AS unknown;

-- name: record_manifest_pdf
UPDATE manifests
SET pdf_path = %(pdf_path)s, pdf_sha256 = %(pdf_sha256)s, pdf_bytes = %(pdf_bytes)s,
    downloaded_at = now(), last_error = NULL
WHERE manifest_id = %(manifest_id)s AND read_at IS NOT NULL
RETURNING manifest_id;

-- name: record_manifest_error
UPDATE manifests SET last_error = %(error)s WHERE manifest_id = %(manifest_id)s RETURNING manifest_id;

-- name: unfinished_manifests
-- Manifests with a step still to do, oldest first (manifests_unfinished_idx).
SELECT m.manifest_id, m.transmit_id, m.cp_manifest_id, m.manifest_url, m.po_number, m.shipments_url,
       m.artifact_url, m.artifact_media_type, m.read_at, m.shipments_listed_at, m.pdf_path,
       t.group_id, t.manifest_date
FROM manifests m
JOIN manifest_transmits t ON t.transmit_id = m.transmit_id
WHERE m.shipments_listed_at IS NULL OR m.pdf_path IS NULL
ORDER BY m.manifest_id;

-- name: manifests_of_transmit
SELECT manifest_id, cp_manifest_id, po_number, shipment_count, pdf_path, last_error
FROM manifests
WHERE transmit_id = %(transmit_id)s
ORDER BY manifest_id;

-- name: manifests_of_group
-- What a group's earlier transmits made (for "nothing to transmit": where its labels went).
SELECT m.cp_manifest_id, m.po_number, m.shipment_count, t.settled_at
FROM manifest_transmits t
JOIN manifests m ON m.transmit_id = t.transmit_id
WHERE t.group_id = %(group_id)s AND t.status = 'transmitted'
ORDER BY m.manifest_id;

-- ============================================================================================
-- Reading back (manifest list, manifest show)
-- ============================================================================================

-- name: list_transmits
-- Every transmit of the days since, newest first, each with its manifests (manifest_transmits_date_idx).
SELECT t.transmit_id, t.manifest_date, t.group_id, t.status, t.started_at, t.settled_at, t.found_by,
       t.error, jsonb_array_length(t.included) AS included, jsonb_array_length(t.excluded) AS excluded,
       m.cp_manifest_id, m.po_number, m.shipment_count, m.pdf_path, m.last_error AS manifest_error
FROM manifest_transmits t
LEFT JOIN manifests m ON m.transmit_id = t.transmit_id
WHERE t.manifest_date >= %(since)s
ORDER BY t.manifest_date DESC, t.transmit_id DESC, m.manifest_id;

-- name: find_manifest
-- A manifest by Canada Post's manifest id or its PO number.
SELECT m.manifest_id, m.cp_manifest_id, m.po_number, m.manifest_url, m.details_url, m.shipments_url,
       m.artifact_url, m.read_at, m.shipments_listed_at, m.shipment_count, m.pdf_path, m.pdf_sha256,
       m.pdf_bytes, m.downloaded_at, m.last_error, m.found_by, m.recorded_at,
       t.transmit_id, t.group_id, t.manifest_date, t.started_at, t.settled_at, t.included, t.excluded
FROM manifests m
JOIN manifest_transmits t ON t.transmit_id = m.transmit_id
WHERE m.cp_manifest_id = %(key)s OR m.po_number = %(key)s
ORDER BY m.manifest_id;

-- name: shipments_on_manifest
SELECT ms.cp_shipment_id, s.order_id, s.tracking_pin, s.status, s.transmitted_at
FROM manifest_shipments ms
LEFT JOIN shipments s ON s.shipment_id = ms.shipment_id
WHERE ms.manifest_id = %(manifest_id)s
ORDER BY s.order_id NULLS LAST, ms.cp_shipment_id;
