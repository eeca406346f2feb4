-- Queues MessagePublished for each new message (the trigger below), with the channel's webhook URLs of
-- that moment, so the webhook outbox is a pure function of the log. Only the envelope's empty fields
-- are dropped; the payload goes as written (jsonb_strip_nulls is recursive: {"a": null} would reach
-- subscribers as {}).
CREATE OR REPLACE FUNCTION realtime.queue_message() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    urls text[];
BEGIN
    IF NEW.channel_id IS NOT NULL THEN
        SELECT c.webhook_urls INTO urls FROM realtime.channels c WHERE c.id = NEW.channel_id;
    END IF;
    INSERT INTO system.pending_events (event_id, stream_id, type, data, metadata)
    VALUES (NEW.id, 'realtime-' || NEW.channel_name, 'MessagePublished',
            jsonb_strip_nulls(jsonb_build_object(
                'messageId', NEW.id, 'channelId', NEW.channel_id, 'channel', NEW.channel_name,
                'event', NEW.event_name, 'senderType', NEW.sender_type,
                'senderId', NEW.sender_id, 'webhookUrls', to_jsonb(coalesce(urls, '{}'::text[])),
                'createdAt', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
            || jsonb_build_object('payload', NEW.payload),
            system.change_metadata());
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER queue_message AFTER INSERT ON realtime.messages FOR EACH ROW EXECUTE FUNCTION realtime.queue_message();
