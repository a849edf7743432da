-- Named queries for runs (fulfil/runs.py).

-- name: start_run
INSERT INTO runs (run_id, command, hostname, pid, lease_owner)
VALUES (%(run_id)s, %(command)s, %(hostname)s, %(pid)s, %(lease_owner)s);

-- name: finish_run
UPDATE runs SET finished_at = clock_timestamp(), exit_code = %(exit_code)s, summary = %(summary)s
WHERE run_id = %(run_id)s;

-- name: release_leases
-- At the end of a run (finished, stopped by a signal, or failed): no claim outlives the process
-- that made it, so another run or host takes the work at once instead of waiting for the lease.
-- Purchases whose answer is unknown stay label_creation_initiated; their settle window, not the
-- lease, keeps them from being bought again too early.
UPDATE shipments
SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner = %(owner)s
RETURNING shipment_id;
