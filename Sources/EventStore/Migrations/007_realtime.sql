-- Realtime channels, messages and webhook deliveries.
--
-- Channels are a read model of the Channel* events (stream `channel-<uuid>`), written inline by the
-- append. Their webhook signing secrets live apart, readable by the server only.
--
-- Messages are written like a user table: a publish is an INSERT into realtime.messages, run as the
-- caller's role so row-level security decides whether it may (InsForge's model: SELECT on channels
-- is subscribe, INSERT on messages is publish). The insert's trigger queues the MessagePublished
-- event (event id = message id, stream `realtime-<channel name>`) in the same transaction, and the
-- sequencer gives it its log position. Sockets and webhooks are fed from the log, never from here.
CREATE SCHEMA realtime;
GRANT USAGE ON SCHEMA realtime TO anon, authenticated, project_admin;

CREATE TABLE realtime.channels (
    id           uuid PRIMARY KEY,
    pattern      text NOT NULL UNIQUE,
    description  text,
    webhook_urls text[] NOT NULL DEFAULT '{}',
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
GRANT SELECT ON realtime.channels TO anon, authenticated, project_admin;

CREATE TABLE realtime.channel_secrets (
    channel_id        uuid PRIMARY KEY,
    secret_ciphertext text NOT NULL,
    rotated_at        timestamptz NOT NULL
);
REVOKE ALL ON realtime.channel_secrets FROM PUBLIC;

CREATE TABLE realtime.messages (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_name   text NOT NULL CHECK (event_name ~ '^[^[:cntrl:]]{1,200}$'),
    channel_id   uuid,
    channel_name text NOT NULL CHECK (channel_name ~ '^[^[:space:][:cntrl:]]{1,200}$'),
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(payload) = 'object'),
    sender_type  text NOT NULL DEFAULT 'system' CHECK (sender_type IN ('system', 'user')),
    sender_id    uuid,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_channel_created ON realtime.messages (channel_id, created_at DESC);
CREATE INDEX messages_event_created ON realtime.messages (event_name, created_at DESC);
CREATE INDEX messages_created ON realtime.messages (created_at DESC);
GRANT INSERT ON realtime.messages TO anon, authenticated, project_admin;

-- The channel being checked, for policies (set by the server for subscribe and publish checks).
CREATE FUNCTION realtime.channel_name() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('realtime.channel_name', true), '')
$$;
GRANT EXECUTE ON FUNCTION realtime.channel_name() TO anon, authenticated, project_admin;

-- Whether channel `name` matches `pattern`: `%` is the only wildcard (`_` and `\` are literal).
CREATE FUNCTION realtime.matches(pattern text, name text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT pattern = name OR name LIKE replace(replace(pattern, '\', '\\'), '_', '\_')
$$;
GRANT EXECUTE ON FUNCTION realtime.matches(text, text) TO anon, authenticated, project_admin;

-- The enabled channel that `name` resolves to, among those the current role can see: an exact
-- pattern wins, then the most specific (most literal characters), then the first by pattern.
CREATE FUNCTION realtime.resolve(p_name text) RETURNS SETOF realtime.channels LANGUAGE sql STABLE AS $$
    SELECT c.* FROM realtime.channels c
     WHERE c.enabled AND realtime.matches(c.pattern, p_name)
     ORDER BY c.pattern = p_name DESC, length(replace(c.pattern, '%', '')) DESC, c.pattern
     LIMIT 1
$$;
GRANT EXECUTE ON FUNCTION realtime.resolve(text) TO anon, authenticated, project_admin;

-- Queues MessagePublished for each new message, with the channel's webhook URLs of that moment
-- (so the webhook outbox is a pure function of the log).
CREATE FUNCTION realtime.queue_message() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
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
                'event', NEW.event_name, 'payload', NEW.payload, 'senderType', NEW.sender_type,
                'senderId', NEW.sender_id, 'webhookUrls', to_jsonb(coalesce(urls, '{}'::text[])),
                'createdAt', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))),
            system.change_metadata());
    RETURN NULL;
END $$;
CREATE TRIGGER queue_message AFTER INSERT ON realtime.messages FOR EACH ROW EXECUTE FUNCTION realtime.queue_message();

-- Publishes from SQL (triggers): a system message on the channel `p_channel` resolves to. Without
-- an enabled channel it warns and returns NULL, as InsForge does.
CREATE FUNCTION realtime.publish(p_channel text, p_event text, p_payload jsonb) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
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

-- One round trip per socket check, as the caller: the role, the claims and the channel set locally
-- (like system.run_as), then the check. A NULL role keeps the server's own (admins always may).
CREATE FUNCTION realtime.act_as(p_role text, p_claims text, p_channel text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_role IS NOT NULL THEN
        IF p_role NOT IN ('anon', 'authenticated', 'project_admin') THEN
            RAISE EXCEPTION 'unknown role %', p_role USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('role', p_role, true);
    END IF;
    PERFORM set_config('request.jwt.claims', p_claims, true), set_config('realtime.channel_name', p_channel, true);
END $$;
REVOKE ALL ON FUNCTION realtime.act_as(text, text, text) FROM PUBLIC;

-- `subscribe`: the channel the caller may see, if any.
CREATE FUNCTION realtime.subscribe_as(p_role text, p_claims text, p_channel text)
RETURNS TABLE (id uuid, pattern text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM realtime.act_as(p_role, p_claims, p_channel);
    RETURN QUERY SELECT c.id, c.pattern FROM realtime.resolve(p_channel) c;
END $$;
REVOKE ALL ON FUNCTION realtime.subscribe_as(text, text, text) FROM PUBLIC;

-- `publish`: the message inserted as the caller (row-level security's WITH CHECK decides; a denial
-- raises 42501). No RETURNING: that would need SELECT on messages too.
CREATE FUNCTION realtime.publish_as(p_role text, p_claims text, p_id uuid, p_channel_id uuid, p_channel text,
                                    p_event text, p_payload jsonb, p_sender_type text, p_sender_id uuid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM realtime.act_as(p_role, p_claims, p_channel);
    INSERT INTO realtime.messages (id, event_name, channel_id, channel_name, payload, sender_type, sender_id)
    VALUES (p_id, p_event, p_channel_id, p_channel, p_payload, p_sender_type, p_sender_id);
END $$;
REVOKE ALL ON FUNCTION realtime.publish_as(text, text, uuid, uuid, text, text, jsonb, text, uuid) FROM PUBLIC;

-- Webhooks. The outbox is a read model of MessagePublished (one row per message and URL, ids
-- derived from both, so a replay rebuilds it exactly), written by a projection runner in the same
-- transaction as its checkpoint. Delivery state is the dispatcher's own and is not replayed.
CREATE TABLE realtime.webhook_outbox (
    id         uuid PRIMARY KEY,
    position   bigint NOT NULL,
    message_id uuid NOT NULL,
    channel_id uuid,
    channel    text NOT NULL,
    event      text NOT NULL,
    url        text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX webhook_outbox_position ON realtime.webhook_outbox (position);
CREATE INDEX webhook_outbox_message ON realtime.webhook_outbox (message_id);
REVOKE ALL ON realtime.webhook_outbox FROM PUBLIC;

-- How far the dispatcher has taken outbox rows into deliveries (one row).
CREATE TABLE realtime.webhook_dispatcher (
    id       int PRIMARY KEY CHECK (id = 1),
    position bigint NOT NULL
);
INSERT INTO realtime.webhook_dispatcher VALUES (1, 0);
REVOKE ALL ON realtime.webhook_dispatcher FROM PUBLIC;

CREATE TABLE realtime.webhook_deliveries (
    id              uuid PRIMARY KEY REFERENCES realtime.webhook_outbox (id),
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'exhausted', 'disabled')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_status     int,
    last_error      text,
    delivered_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON realtime.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
REVOKE ALL ON realtime.webhook_deliveries FROM PUBLIC;

CREATE TABLE realtime.webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES realtime.webhook_deliveries (id),
    attempt      int NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  double precision NOT NULL,
    status_code  int,
    error        text
);
CREATE INDEX webhook_attempts_delivery ON realtime.webhook_attempts (delivery_id, attempt);
REVOKE ALL ON realtime.webhook_attempts FROM PUBLIC;
