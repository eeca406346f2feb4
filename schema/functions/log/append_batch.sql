-- Group commit of commands with expected versions (the writer's path when some command expects a
-- version; every command accepting any version goes through system.append_known). Many commands in
-- one round trip, laid out flat: command i owns p_counts[i] consecutive entries of the event arrays.
-- Callers sort commands by stream (keeping their order within a stream), so one pass carries each
-- stream's version forward.
--
-- The log lock is held until commit, so only what depends on the log's head is done under it: the
-- JSON is parsed, the streams' versions worked out (system.lock_log_for, from the versions the caller
-- knows, p_known_versions[i] exact at head p_known_as_of[i]) and the events laid out before it; under
-- it, the re-check of the streams since the head the versions were read at, the expectations and the
-- insert. Duplicate event ids are left to the unique index: the batch then fails as a whole and the
-- caller retries its commands one by one through system.append_events, which answers retries.
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
