-- 0010: the optional daily cap on tracking calls (FULFIL_TRACKING_DAILY_CALLS, issue 12).
--
-- One row per day (Canada Post's day: Eastern time) counting the tracking calls taken under the
-- cap. A refresher takes one unit in the same statement that claims the parcel it will ask
-- about, and only while the day has one left (INSERT … ON CONFLICT DO UPDATE … WHERE re-checks
-- the count on the row it locks), so processes and hosts together never exceed the cap. A call
-- that provably sent nothing gives its unit back; a crash between claim and call keeps it spent
-- (never more calls than the cap, at worst one fewer).

CREATE TABLE IF NOT EXISTS tracking_daily_calls (
    day   date PRIMARY KEY,
    calls integer NOT NULL,
    CONSTRAINT tracking_daily_calls_not_negative CHECK (calls >= 0)
);
