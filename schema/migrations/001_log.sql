-- The event log (in the spirit of message-db): one append-only table, the queue that feeds it
-- record changes, and the bookkeeping of async projections. The functions that append, sequence and
-- guard it are in schema/functions/log/.
--
-- Ordering: every append takes one transaction-scoped advisory lock before it picks positions, and
-- holds it until commit (system.lock_log). Positions are therefore handed out in commit order, so a
-- reader that has seen position N can never later find an unseen row below N. Positions are
-- max(position)+1 under that lock: dense, no sequence.

CREATE SCHEMA IF NOT EXISTS system;

CREATE TABLE system.events (
    position       bigint      PRIMARY KEY,
    stream_id      text        NOT NULL CHECK (strpos(stream_id, '-') > 1),
    stream_version bigint      NOT NULL CHECK (stream_version > 0),
    event_id       uuid        NOT NULL UNIQUE,
    type           text        NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    category       text        GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_category_position ON system.events (category, position);

-- Async projections: checkpoint per projection, written with its read-model changes.
CREATE TABLE system.checkpoints (
    projection text PRIMARY KEY,
    position   bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events a projection failed on N times: parked, skipped, visible to admins.
CREATE TABLE system.parked_events (
    projection text        NOT NULL,
    position   bigint      NOT NULL,
    event_id   uuid        NOT NULL,
    type       text        NOT NULL,
    attempts   int         NOT NULL,
    error      text        NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);

-- Events queued by writes to tracked tables and by realtime messages, in their writers'
-- transactions. Appending under the log lock inside the writer's transaction would serialize every
-- write to every table (the lock is held through commit); a queued event is a plain insert,
-- committed or rolled back with the change, and a single sequencer (system.sequence_pending) moves
-- committed ones into the log in queue order, so positions still follow commit order.
CREATE TABLE system.pending_events (
    id        bigserial PRIMARY KEY,
    event_id  uuid  NOT NULL,
    stream_id text  NOT NULL CHECK (strpos(stream_id, '-') > 1),
    type      text  NOT NULL,
    data      jsonb NOT NULL,
    metadata  jsonb NOT NULL DEFAULT '{}'::jsonb
);
REVOKE ALL ON system.pending_events FROM PUBLIC;
-- The sequencer vacuums the queue every few thousand moved events; vacuum's last step (giving empty
-- pages at the end back to the system) takes an ACCESS EXCLUSIVE lock that would stall every write
-- queueing here. The queue reuses its pages instead.
ALTER TABLE system.pending_events SET (vacuum_truncate = false);
