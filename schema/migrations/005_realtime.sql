-- Realtime channels, messages and webhook deliveries.
--
-- Channels are a read model of the Channel* events (stream `channel-<uuid>`), written inline by the
-- append. Their webhook signing secrets live apart, readable by the server only.
--
-- Messages are written like a user table: a publish is an INSERT into realtime.messages, run as the
-- caller's role so row-level security decides whether it may (InsForge's model: SELECT on channels
-- is subscribe, INSERT on messages is publish). The insert's trigger (realtime.queue_message) queues
-- the MessagePublished event (event id = message id, stream `realtime-<channel name>`) in the same
-- transaction, and the sequencer gives it its log position. Sockets and webhooks are fed from the
-- log, never from here. The functions (publishing, checks as the caller, table channels) are in
-- schema/functions/realtime/.
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

-- The channels and messages tables belong to insforge_sql (the unrestricted raw-SQL route), so admins
-- write the policies that decide who may subscribe and publish; it reads the rest of the schema.
ALTER TABLE realtime.channels OWNER TO insforge_sql;
ALTER TABLE realtime.messages OWNER TO insforge_sql;
GRANT USAGE ON SCHEMA realtime TO insforge_sql;
GRANT SELECT ON ALL TABLES IN SCHEMA realtime TO insforge_sql;
ALTER DEFAULT PRIVILEGES IN SCHEMA realtime GRANT SELECT ON TABLES TO insforge_sql;
