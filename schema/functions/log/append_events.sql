-- One command, carefully: lock, append, notify. The SQL API for triggers and scripts, and the
-- group-commit writer's path for a command whose batch failed (it answers retries by event id).
CREATE OR REPLACE FUNCTION system.append_events(
    p_stream_id text, p_expected bigint,
    p_event_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[],
    OUT outcome text, OUT first_position bigint, OUT last_version bigint
) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM system.lock_log();
    SELECT a.outcome, a.first_position, a.last_version INTO outcome, first_position, last_version
      FROM system.append_locked(p_stream_id, p_expected, p_event_ids, p_types, p_data, p_metadata) a;
    IF outcome = 'appended' THEN
        PERFORM pg_notify('system_events', (first_position + cardinality(p_event_ids) - 1)::text);
    END IF;
END $$;
