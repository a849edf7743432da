-- 0005: rate budgets shared by every process and host that uses this database (issue 11).
--
-- A budget is a Canada Post throttle group ('canadapost:A' …) or a Best Buy endpoint
-- ('bestbuy:OR11' …). With a rate, calls are admitted one interval apart (GCRA: tat is when the
-- next call may go); any budget can be paused, for everyone, by a throttle answer. Admission is
-- part of the statement that writes the request's api_calls row (sql/queries/api_calls.sql);
-- fulfil/audit/budget.py says why it works the way it does.

CREATE TABLE IF NOT EXISTS rate_budgets (
    name             text PRIMARY KEY,
    limit_per_window integer,           -- NULL: no rate, pauses only
    window_seconds   double precision,
    interval_seconds double precision,  -- window / (limit × headroom): the spacing admitted
    tat              timestamptz,       -- when the next call may go (NULL: never used)
    paused_until     timestamptz,       -- nothing is admitted before this (in the past: the last pause)
    pause_reason     text,
    paused_at        timestamptz,
    CONSTRAINT rate_budgets_name_form CHECK (name ~ '^[a-z]+:[A-Za-z0-9_]+$'),
    CONSTRAINT rate_budgets_rate_whole CHECK (
        (limit_per_window IS NULL AND window_seconds IS NULL AND interval_seconds IS NULL)
        OR (limit_per_window > 0 AND window_seconds > 0 AND interval_seconds > 0)),
    CONSTRAINT rate_budgets_pause_explained CHECK (
        (paused_until IS NULL) = (pause_reason IS NULL) AND (paused_until IS NULL) = (paused_at IS NULL))
);

-- The budget a call was admitted under: `fulfil status` counts a budget's use in its last window.
ALTER TABLE api_calls ADD COLUMN IF NOT EXISTS rate_budget text;
CREATE INDEX IF NOT EXISTS api_calls_rate_budget_idx ON api_calls (rate_budget, started_at)
    WHERE rate_budget IS NOT NULL;

-- Admit one call under a budget, on the clock of the database (so hosts' clocks never matter).
--   go false (the caller's guard refused): nothing happens, nothing is admitted.
--   paused: refused; wait_seconds until the pause ends (a reservation held is given up).
--   no rate, or coming back with a reservation (reserved): admitted now.
--   the next slot within horizon_s: admitted, the slot taken; the caller waits wait_seconds.
--   the next slot within longest_wait_s: reserved (the slot taken, admitted false); the caller
--     sleeps until it, then comes back with reserved true.
--   further: refused, nothing taken; wait_seconds says how far.
-- The row is locked for the statement, so admissions to one budget are taken one after another.
CREATE OR REPLACE FUNCTION fulfil_rate_admit(
    budget text, calls integer, window_s double precision, interval_s double precision,
    horizon_s double precision, longest_wait_s double precision, reserved boolean, go boolean,
    OUT slot timestamptz, OUT admitted boolean, OUT wait_seconds double precision,
    OUT paused_until timestamptz, OUT pause_reason text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    b rate_budgets%ROWTYPE;
    now_at timestamptz;
    next_at timestamptz;
BEGIN
    admitted := false;
    wait_seconds := 0;
    IF NOT go THEN
        RETURN;
    END IF;
    IF interval_s IS NULL THEN
        -- Pauses only: a read; the row is made on first use, so `fulfil status` lists the budget.
        SELECT * INTO b FROM rate_budgets r WHERE r.name = budget;
        IF NOT FOUND THEN
            INSERT INTO rate_budgets (name) VALUES (budget) ON CONFLICT DO NOTHING;
        END IF;
    ELSE
        SELECT * INTO b FROM rate_budgets r WHERE r.name = budget FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO rate_budgets (name, limit_per_window, window_seconds, interval_seconds)
            VALUES (budget, calls, window_s, interval_s) ON CONFLICT DO NOTHING;
            SELECT * INTO b FROM rate_budgets r WHERE r.name = budget FOR UPDATE;
        END IF;
    END IF;
    -- Read after the lock: a statement that waited for it must not take a slot from the past.
    now_at := clock_timestamp();
    IF b.paused_until > now_at THEN
        paused_until := b.paused_until;
        pause_reason := b.pause_reason;
        wait_seconds := extract(epoch FROM b.paused_until - now_at);
        RETURN;
    END IF;
    IF interval_s IS NULL OR reserved THEN
        slot := now_at;
        admitted := true;
        RETURN;
    END IF;
    next_at := greatest(b.tat, now_at);
    wait_seconds := extract(epoch FROM next_at - now_at);
    IF wait_seconds > greatest(horizon_s, longest_wait_s) THEN
        RETURN;
    END IF;
    -- The settings of the caller are the budget's from now on: a changed limit takes effect.
    UPDATE rate_budgets r
    SET tat = next_at + make_interval(secs => interval_s),
        limit_per_window = calls,
        window_seconds = window_s,
        interval_seconds = interval_s
    WHERE r.name = budget;
    slot := next_at;
    admitted := wait_seconds <= horizon_s;
END;
$$;
