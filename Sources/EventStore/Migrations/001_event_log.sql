-- The event log: one append-only table and a handful of functions (in the spirit of message-db).
--
-- Plans: the append functions run with enable_seqscan off. A long-lived connection otherwise
-- keeps the generic plan it made while the log was nearly empty (a sequential scan), and every
-- append gets slower as the log grows.
--
-- Ordering: every append takes one transaction-scoped advisory lock before it picks
-- positions, and holds it until commit. Positions are therefore handed out in commit
-- order, so a reader that has seen position N can never later find an unseen row
-- below N. Positions are max(position)+1 under that lock: dense, no sequence.

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

-- Events are immutable: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION system.reject_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'system.events is append-only (% rejected)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON system.events
    FOR EACH ROW EXECUTE FUNCTION system.reject_event_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON system.events
    FOR EACH STATEMENT EXECUTE FUNCTION system.reject_event_change();

-- The lock every appender takes; held until its transaction ends.
CREATE FUNCTION system.lock_log() RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(7130001)
$$;

-- Appends one command's events to one stream. Must run after system.lock_log().
-- p_expected: NULL any, -1 no stream, -2 stream exists, n >= 0 exactly version n.
-- outcome: 'appended', 'duplicate' (all event ids already stored in this stream: a retry),
-- 'wrong_version' or 'id_reused' (some ids stored elsewhere or only some of them).
CREATE FUNCTION system.append_locked(
    p_stream_id text, p_expected bigint,
    p_event_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[],
    OUT outcome text, OUT first_position bigint, OUT last_version bigint
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    n int := cardinality(p_event_ids);
    current_version bigint;
    stored int;
    stored_here int;
    base bigint;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE e.stream_id = p_stream_id), min(e.position), max(e.stream_version)
      INTO stored, stored_here, first_position, last_version
      FROM system.events e WHERE e.event_id = ANY (p_event_ids);
    IF stored > 0 THEN
        outcome := CASE WHEN stored = n AND stored_here = n THEN 'duplicate' ELSE 'id_reused' END;
        RETURN;
    END IF;

    SELECT coalesce(max(e.stream_version), 0) INTO current_version
      FROM system.events e WHERE e.stream_id = p_stream_id;
    last_version := current_version;
    IF (p_expected = -1 AND current_version <> 0)
       OR (p_expected = -2 AND current_version = 0)
       OR (p_expected >= 0 AND current_version <> p_expected) THEN
        outcome := 'wrong_version';
        first_position := NULL;
        RETURN;
    END IF;

    SELECT coalesce(max(e.position), 0) INTO base FROM system.events e;
    INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
    SELECT base + u.ord, p_stream_id, current_version + u.ord, u.id, u.t, u.d, coalesce(u.m, '{}'::jsonb)
      FROM unnest(p_event_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS u(id, t, d, m, ord);
    outcome := 'appended';
    first_position := base + 1;
    last_version := current_version + n;
END $$;

-- The SQL API for triggers and scripts: lock, append, notify.
CREATE FUNCTION system.append_events(
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

-- One event, message-db style: write_event(id, stream, type, data, metadata, expected).
CREATE FUNCTION system.write_event(
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

-- Many commands in one round trip (group commit). Commands are laid out flat: command i owns
-- p_counts[i] consecutive entries of the event arrays. Callers sort commands by stream (keeping
-- their order within a stream), so one pass carries each stream's version forward.
--
-- The caller may pass the versions it knows (p_known_versions[i], -1 when unknown) together with
-- the head position they were exact at (p_known_head). Under the log lock, if the head is still
-- p_known_head nobody else has appended since, so those versions are still exact and need no
-- lookup. Duplicate event ids are left to the unique index: the batch then fails as a whole and
-- the caller retries its commands one by one through system.append_events, which answers retries.
CREATE FUNCTION system.append_batch(
    p_streams text[], p_expected bigint[], p_counts int[],
    p_event_ids uuid[], p_types text[], p_data text[], p_metadata text[],
    p_known_head bigint DEFAULT -1, p_known_versions bigint[] DEFAULT NULL
) RETURNS TABLE (command int, outcome text, first_position bigint, last_version bigint, head bigint, knew_head boolean)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    n_commands int := cardinality(p_streams);
    accepted boolean[] := array_fill(false, ARRAY[n_commands]);
    position_base bigint[] := array_fill(0::bigint, ARRAY[n_commands]);
    version_base bigint[] := array_fill(0::bigint, ARRAY[n_commands]);
    versions bigint[];
    start_head bigint;
    next_position bigint;
    current_version bigint;
    known boolean;
    e bigint;
    event_command int[];
    event_ordinal int[];
BEGIN
    PERFORM system.lock_log();
    SELECT coalesce(max(ev.position), 0) INTO start_head FROM system.events ev;
    next_position := start_head;
    known := p_known_head = start_head AND p_known_versions IS NOT NULL;

    -- The version of each command's stream before the batch: known, or looked up (index only).
    SELECT array_agg(CASE WHEN known AND kv >= 0 THEN kv
                          ELSE coalesce((SELECT max(ev.stream_version) FROM system.events ev WHERE ev.stream_id = s), 0) END
                     ORDER BY ord)
      INTO versions
      FROM unnest(p_streams, coalesce(p_known_versions, array_fill(-1::bigint, ARRAY[n_commands])))
           WITH ORDINALITY AS u(s, kv, ord);

    FOR i IN 1 .. n_commands LOOP
        IF i = 1 OR p_streams[i] <> p_streams[i - 1] THEN
            current_version := versions[i];
        END IF;
        e := p_expected[i];
        version_base[i] := current_version;
        IF (e = -1 AND current_version <> 0) OR (e = -2 AND current_version = 0) OR (e >= 0 AND current_version <> e) THEN
            CONTINUE;
        END IF;
        accepted[i] := true;
        position_base[i] := next_position;
        next_position := next_position + p_counts[i];
        current_version := current_version + p_counts[i];
    END LOOP;

    SELECT array_agg(c ORDER BY c, o), array_agg(o ORDER BY c, o) INTO event_command, event_ordinal
      FROM (SELECT c, generate_series(1, p_counts[c]) AS o FROM generate_series(1, n_commands) AS c) x;

    -- A refused command may be a retry of one that already went in: let the careful path answer it.
    IF false = ANY (accepted) AND EXISTS (
        SELECT 1 FROM unnest(event_command, p_event_ids) AS u(c, id)
        JOIN system.events ev ON ev.event_id = u.id WHERE NOT accepted[u.c]) THEN
        RAISE EXCEPTION 'a refused command of this batch may be a retry' USING ERRCODE = 'unique_violation';
    END IF;

    IF next_position > start_head THEN
        INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
        SELECT position_base[u.c] + u.o, p_streams[u.c], version_base[u.c] + u.o, u.id, u.t, u.d::jsonb, u.m::jsonb
          FROM unnest(event_command, event_ordinal, p_event_ids, p_types, p_data, p_metadata) AS u(c, o, id, t, d, m)
         WHERE accepted[u.c];
        PERFORM pg_notify('system_events', next_position::text);
    END IF;

    FOR i IN 1 .. n_commands LOOP
        command := i;
        outcome := CASE WHEN accepted[i] THEN 'appended' ELSE 'wrong_version' END;
        first_position := CASE WHEN accepted[i] THEN position_base[i] + 1 END;
        last_version := CASE WHEN accepted[i] THEN version_base[i] + p_counts[i] ELSE version_base[i] END;
        head := next_position;
        knew_head := known;
        RETURN NEXT;
    END LOOP;
END $$;

-- Reads (message-db's get_stream_messages / get_category_messages).
CREATE FUNCTION system.stream_events(p_stream_id text, p_after_version bigint DEFAULT 0, p_limit int DEFAULT 1000)
RETURNS SETOF system.events LANGUAGE sql STABLE AS $$
    SELECT * FROM system.events WHERE stream_id = p_stream_id AND stream_version > p_after_version
    ORDER BY stream_version LIMIT p_limit
$$;

CREATE FUNCTION system.all_events(p_after bigint DEFAULT 0, p_limit int DEFAULT 1000)
RETURNS SETOF system.events LANGUAGE sql STABLE AS $$
    SELECT * FROM system.events WHERE position > p_after ORDER BY position LIMIT p_limit
$$;

CREATE FUNCTION system.category_events(p_category text, p_after bigint DEFAULT 0, p_limit int DEFAULT 1000)
RETURNS SETOF system.events LANGUAGE sql STABLE AS $$
    SELECT * FROM system.events WHERE category = p_category AND position > p_after ORDER BY position LIMIT p_limit
$$;

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
