-- The lock every appender takes before it picks positions; held until its transaction ends, so
-- positions are handed out in commit order (schema/migrations/001_log.sql).
CREATE OR REPLACE FUNCTION system.lock_log() RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(7130001)
$$;
