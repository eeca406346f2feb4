-- One event, message-db style: write_event(id, stream, type, data, metadata, expected); returns its
-- position, raises serialization_failure when the append is refused.
CREATE OR REPLACE FUNCTION system.write_event(
    p_event_id uuid, p_stream_id text, p_type text, p_data jsonb,
    p_metadata jsonb DEFAULT '{}'::jsonb, p_expected bigint DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    SELECT * INTO r FROM system.append_events(p_stream_id, p_expected,
        ARRAY[p_event_id], ARRAY[p_type], ARRAY[p_data], ARRAY[p_metadata]);
    IF r.outcome IN ('wrong_version', 'id_reused') THEN
        RAISE EXCEPTION 'append to % refused: %', p_stream_id, r.outcome USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN r.first_position;
END $$;
