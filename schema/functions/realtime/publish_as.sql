-- `publish`: the message inserted as the caller (row-level security's WITH CHECK decides; a denial
-- raises 42501). No RETURNING: that would need SELECT on messages too.
CREATE OR REPLACE FUNCTION realtime.publish_as(p_role text, p_claims text, p_id uuid, p_channel_id uuid, p_channel text,
                                    p_event text, p_payload jsonb, p_sender_type text, p_sender_id uuid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM realtime.act_as(p_role, p_claims, p_channel);
    INSERT INTO realtime.messages (id, event_name, channel_id, channel_name, payload, sender_type, sender_id)
    VALUES (p_id, p_event, p_channel_id, p_channel, p_payload, p_sender_type, p_sender_id);
END $$;
REVOKE ALL ON FUNCTION realtime.publish_as(text, text, uuid, uuid, text, text, jsonb, text, uuid) FROM PUBLIC;
