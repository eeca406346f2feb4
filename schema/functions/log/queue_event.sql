-- Queues one event for the sequencer (inside the caller's transaction).
CREATE OR REPLACE FUNCTION system.queue_event(p_stream_id text, p_type text, p_data jsonb, p_metadata jsonb DEFAULT '{}'::jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- plpgsql, not sql: a SQL function's INSERT is planned again on every call (this runs for every
    -- write statement on a tracked table).
    INSERT INTO system.pending_events (event_id, stream_id, type, data, metadata)
    VALUES (gen_random_uuid(), p_stream_id, p_type, p_data, coalesce(p_metadata, '{}'::jsonb));
END $$;
REVOKE ALL ON FUNCTION system.queue_event(text, text, jsonb, jsonb) FROM PUBLIC;
