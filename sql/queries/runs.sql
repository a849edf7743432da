-- Named queries for runs (fulfil/runs.py).

-- name: start_run
INSERT INTO runs (run_id, command, hostname, pid, lease_owner)
VALUES (%(run_id)s, %(command)s, %(hostname)s, %(pid)s, %(lease_owner)s);

-- name: finish_run
UPDATE runs SET finished_at = clock_timestamp(), exit_code = %(exit_code)s, summary = %(summary)s
WHERE run_id = %(run_id)s;
