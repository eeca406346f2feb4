-- The event log: one append-only table and a handful of functions (in the spirit of message-db).
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
) LANGUAGE plpgsql AS $$
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
-- their order within a stream), so one pass can carry each stream's version forward. The work per
-- batch is a fixed handful of statements, whatever its size: that is what makes group commit pay.
CREATE FUNCTION system.append_batch(
    p_streams text[], p_expected bigint[], p_counts int[],
    p_event_ids uuid[], p_types text[], p_data text[], p_metadata text[]
) RETURNS TABLE (command int, outcome text, first_position bigint, last_version bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n_commands int := cardinality(p_streams);
    accepted boolean[] := array_fill(false, ARRAY[n_commands]);
    position_base bigint[] := array_fill(0::bigint, ARRAY[n_commands]);
    version_base bigint[] := array_fill(0::bigint, ARRAY[n_commands]);
    outcomes text[] := array_fill('wrong_version'::text, ARRAY[n_commands]);
    distinct_streams text[];
    current_versions bigint[];
    stream_index int := 0;
    current_version bigint;
    next_position bigint;
    e bigint;
    k int;
    off int := 0;
    event_command int[];
    event_ordinal int[];
BEGIN
    PERFORM system.lock_log();

    -- A retry (some ids already stored) takes the careful path, command by command.
    IF EXISTS (SELECT 1 FROM system.events WHERE event_id = ANY (p_event_ids)) THEN
        FOR i IN 1 .. n_commands LOOP
            k := p_counts[i];
            SELECT i, a.outcome, a.first_position, a.last_version INTO command, outcome, first_position, last_version
              FROM system.append_locked(p_streams[i], p_expected[i],
                   p_event_ids[off + 1 : off + k], p_types[off + 1 : off + k],
                   p_data[off + 1 : off + k]::jsonb[], p_metadata[off + 1 : off + k]::jsonb[]) a;
            IF outcome = 'appended' THEN
                PERFORM pg_notify('system_events', (first_position + k - 1)::text);
            END IF;
            off := off + k;
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;

    SELECT array_agg(s ORDER BY s) INTO distinct_streams FROM (SELECT DISTINCT unnest(p_streams) AS s) d;
    SELECT array_agg(coalesce((SELECT max(ev.stream_version) FROM system.events ev WHERE ev.stream_id = s), 0) ORDER BY ord)
      INTO current_versions FROM unnest(distinct_streams) WITH ORDINALITY AS u(s, ord);
    SELECT coalesce(max(ev.position), 0) INTO next_position FROM system.events ev;

    FOR i IN 1 .. n_commands LOOP
        IF i = 1 OR p_streams[i] <> p_streams[i - 1] THEN
            stream_index := stream_index + 1;
            current_version := current_versions[stream_index];
        END IF;
        e := p_expected[i];
        version_base[i] := current_version;
        IF (e = -1 AND current_version <> 0) OR (e = -2 AND current_version = 0) OR (e >= 0 AND current_version <> e) THEN
            CONTINUE;
        END IF;
        accepted[i] := true;
        outcomes[i] := 'appended';
        position_base[i] := next_position;
        next_position := next_position + p_counts[i];
        current_version := current_version + p_counts[i];
    END LOOP;

    SELECT array_agg(c ORDER BY c, o), array_agg(o ORDER BY c, o) INTO event_command, event_ordinal
      FROM (SELECT c, generate_series(1, p_counts[c]) AS o FROM generate_series(1, n_commands) AS c) x;

    INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
    SELECT position_base[u.c] + u.o, p_streams[u.c], version_base[u.c] + u.o, u.id, u.t, u.d::jsonb, u.m::jsonb
      FROM unnest(event_command, event_ordinal, p_event_ids, p_types, p_data, p_metadata) AS u(c, o, id, t, d, m)
     WHERE accepted[u.c]
     ORDER BY 1;

    FOR i IN 1 .. n_commands LOOP
        command := i;
        outcome := outcomes[i];
        first_position := CASE WHEN accepted[i] THEN position_base[i] + 1 END;
        last_version := CASE WHEN accepted[i] THEN version_base[i] + p_counts[i] ELSE version_base[i] END;
        RETURN NEXT;
    END LOOP;
    IF next_position > 0 AND bool_or(x) FROM unnest(accepted) AS x THEN
        PERFORM pg_notify('system_events', next_position::text);
    END IF;
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
