-- Group commit, the common case: every command of the batch accepts any stream version.
--
-- append_batch (009) did all of its work under the log lock, which is held until commit: it parsed
-- the events' JSON, numbered them with window functions and built one result row per command. Here
-- only what depends on the log's head is done under the lock:
--   * the data come as jsonb, parsed while the call's arguments are read, before the lock;
--   * the streams' versions are worked out before the lock, as of the head then; under the lock one
--     short range scan checks that none of the batch's streams was appended to since (positions up
--     to a head are all committed, as appends hold the lock through commit); only if one was are
--     they worked out again (system.lock_log_for);
--   * the caller gives each event its command (p_event_command) and its ordinal among the batch's
--     events of its stream (p_event_within), so the insert needs no numbering;
--   * the answer is one row, the head before the batch and the version of each command's stream
--     before it, from which the caller works out every position and version.
-- Duplicate event ids fail the insert (unique index), as in append_batch: the caller then retries
-- command by command through system.append_events, which answers retries.

-- The version of each stream before a batch, as of log head p_head: a known version (p_known_versions[i],
-- exact at head p_known_as_of[i]) unless its stream was appended to after that head (one range scan of
-- the positions since the oldest such head, all committed), else looked up (index only). Known versions
-- read more than 10,000 positions ago are not worth the scan. `known` counts the versions taken as known.
-- It has no SET clauses of its own (a function with them costs a settings save and restore per call): it
-- runs inside append_any, whose enable_seqscan and plan_cache_mode apply to it too.
CREATE FUNCTION system.stream_versions(p_streams text[], p_known_versions bigint[], p_known_as_of bigint[], p_head bigint,
                                       OUT versions bigint[], OUT known int)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    oldest_known bigint;
BEGIN
    SELECT min(k.h) INTO oldest_known FROM unnest(p_known_versions, p_known_as_of) AS k(v, h)
     WHERE k.v >= 0 AND k.h BETWEEN p_head - 10000 AND p_head;
    SELECT array_agg(CASE WHEN u.kv >= 0 AND u.kh >= oldest_known AND u.kh <= p_head AND coalesce(t.last, 0) <= u.kh
                          THEN u.kv
                          ELSE coalesce((SELECT max(ev.stream_version) FROM system.events ev WHERE ev.stream_id = u.s), 0) END
                     ORDER BY u.ord),
           count(*) FILTER (WHERE u.kv >= 0 AND u.kh >= oldest_known AND u.kh <= p_head AND coalesce(t.last, 0) <= u.kh)
      INTO versions, known
      FROM unnest(p_streams, p_known_versions, p_known_as_of) WITH ORDINALITY AS u(s, kv, kh, ord)
      LEFT JOIN (SELECT ev.stream_id, max(ev.position) AS last FROM system.events ev
                  WHERE ev.position > oldest_known AND ev.position <= p_head GROUP BY ev.stream_id) t ON t.stream_id = u.s;
END $$;

-- Takes the log lock (held until the caller's transaction ends) and returns the head and each command's
-- stream version, exact under the lock. The versions are worked out before the lock, as of the head
-- then; under it, one scan of the positions since (OFFSET 0 keeps it on the primary key, not on every
-- version of the batch's streams) tells whether any of the batch's streams moved, and only then are
-- they worked out again. Runs inside append_any and append_batch, whose settings apply.
CREATE FUNCTION system.lock_log_for(p_streams text[], p_known_versions bigint[], p_known_as_of bigint[],
                                    OUT start_head bigint, OUT versions bigint[], OUT known int)
LANGUAGE plpgsql AS $$
DECLARE
    checked bigint;
BEGIN
    SELECT coalesce(max(ev.position), 0) INTO checked FROM system.events ev;
    SELECT s.versions, s.known INTO versions, known
      FROM system.stream_versions(p_streams, p_known_versions, p_known_as_of, checked) s;

    PERFORM system.lock_log();
    SELECT coalesce(max(ev.position), 0) INTO start_head FROM system.events ev;
    IF start_head > checked AND EXISTS (SELECT 1 FROM (SELECT ev.stream_id FROM system.events ev WHERE ev.position > checked OFFSET 0) x
                                         WHERE x.stream_id = ANY (p_streams)) THEN
        SELECT s.versions, s.known INTO versions, known
          FROM system.stream_versions(p_streams, p_known_versions, p_known_as_of, start_head) s;
    END IF;
END $$;

CREATE FUNCTION system.append_any(
    p_streams text[], p_event_command int[], p_event_within int[],
    p_event_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[],
    p_known_versions bigint[], p_known_as_of bigint[],
    OUT start_head bigint, OUT versions bigint[], OUT known int, OUT recorded_at timestamptz
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    SELECT l.start_head, l.versions, l.known INTO start_head, versions, known
      FROM system.lock_log_for(p_streams, p_known_versions, p_known_as_of) l;
    INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
    SELECT start_head + u.j, p_streams[u.c], versions[u.c] + u.w, u.id, u.t, u.d, u.m
      FROM unnest(p_event_command, p_event_within, p_event_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS u(c, w, id, t, d, m, j);
    PERFORM pg_notify('system_events', (start_head + cardinality(p_event_ids))::text);
    recorded_at := now();
END $$;

-- Batches with expected versions keep append_batch (009's signature and answer), with the same
-- treatment: JSON parsed, versions worked out and events laid out before the lock; under it, the
-- re-check of the streams since the head the versions were read at, the expectations and the insert.
CREATE OR REPLACE FUNCTION system.append_batch(
    p_streams text[], p_expected bigint[], p_counts int[],
    p_event_ids uuid[], p_types text[], p_data text[], p_metadata text[],
    p_known_versions bigint[] DEFAULT NULL, p_known_as_of bigint[] DEFAULT NULL
) RETURNS TABLE (command int, outcome text, first_position bigint, last_version bigint, head bigint, known int)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n_commands int := cardinality(p_streams);
    accepted boolean[] := array_fill(false, ARRAY[n_commands]);
    position_base bigint[] := array_fill(0::bigint, ARRAY[n_commands]);
    version_base bigint[] := array_fill(0::bigint, ARRAY[n_commands]);
    data_jsonb jsonb[] := p_data::jsonb[];
    metadata_jsonb jsonb[] := p_metadata::jsonb[];
    versions bigint[];
    n_known int;
    start_head bigint;
    next_position bigint;
    current_version bigint;
    e bigint;
    event_command int[];
    event_ordinal int[];
BEGIN
    SELECT array_agg(c ORDER BY c, o), array_agg(o ORDER BY c, o) INTO event_command, event_ordinal
      FROM (SELECT c, generate_series(1, p_counts[c]) AS o FROM generate_series(1, n_commands) AS c) x;
    SELECT l.start_head, l.versions, l.known INTO start_head, versions, n_known
      FROM system.lock_log_for(p_streams, p_known_versions, p_known_as_of) l;
    next_position := start_head;

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

    -- A refused command may be a retry of one that already went in: let the careful path answer it.
    IF false = ANY (accepted) AND EXISTS (
        SELECT 1 FROM unnest(event_command, p_event_ids) AS u(c, id)
        JOIN system.events ev ON ev.event_id = u.id WHERE NOT accepted[u.c]) THEN
        RAISE EXCEPTION 'a refused command of this batch may be a retry' USING ERRCODE = 'unique_violation';
    END IF;

    IF next_position > start_head THEN
        INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
        SELECT position_base[u.c] + u.o, p_streams[u.c], version_base[u.c] + u.o, u.id, u.t, u.d, u.m
          FROM unnest(event_command, event_ordinal, p_event_ids, p_types, data_jsonb, metadata_jsonb) AS u(c, o, id, t, d, m)
         WHERE accepted[u.c];
        PERFORM pg_notify('system_events', next_position::text);
    END IF;

    FOR i IN 1 .. n_commands LOOP
        command := i;
        outcome := CASE WHEN accepted[i] THEN 'appended' ELSE 'wrong_version' END;
        first_position := CASE WHEN accepted[i] THEN position_base[i] + 1 END;
        last_version := CASE WHEN accepted[i] THEN version_base[i] + p_counts[i] ELSE version_base[i] END;
        head := next_position;
        known := n_known;
        RETURN NEXT;
    END LOOP;
END $$;
