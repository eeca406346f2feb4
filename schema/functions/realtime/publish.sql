-- Publishes from SQL (triggers): a system message on the channel `p_channel` resolves to. Without
-- an enabled channel it warns and returns NULL, as InsForge does.
CREATE OR REPLACE FUNCTION realtime.publish(p_channel text, p_event text, p_payload jsonb) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    channel realtime.channels;
    id uuid := gen_random_uuid();
BEGIN
    SELECT * INTO channel FROM realtime.resolve(p_channel);
    IF channel.id IS NULL THEN
        RAISE WARNING 'realtime: no enabled channel matches "%"', p_channel;
        RETURN NULL;
    END IF;
    INSERT INTO realtime.messages (id, event_name, channel_id, channel_name, payload, sender_type)
    VALUES (id, p_event, channel.id, p_channel, coalesce(p_payload, '{}'::jsonb), 'system');
    RETURN id;
END $$;
REVOKE ALL ON FUNCTION realtime.publish(text, text, jsonb) FROM PUBLIC;
-- Triggers run as the role of the write that fired them, so every API role may call it.
GRANT EXECUTE ON FUNCTION realtime.publish(text, text, jsonb) TO anon, authenticated, project_admin;
