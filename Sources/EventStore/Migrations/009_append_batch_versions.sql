-- Group commit with a version cache that survives concurrent batches.
--
-- 001's append_batch trusted the caller's known stream versions only when the log head was still
-- the one they were read at. The writer keeps two batches in flight, so the head had almost always
-- moved (the other batch committed in between) and every command's version was looked up under the
-- log lock: a third of the time the lock was held.
--
-- Now each known version comes with the head it was exact at (p_known_as_of[i]). Under the lock,
-- one range scan of the positions written since the oldest of those heads tells which streams were
-- appended to since; a known version is used unless its stream is among them. Positions at or below
-- a head were all committed when that head was returned (appends hold the lock through commit), so
-- the scan sees every append a known version could have missed.
DROP FUNCTION system.append_batch(text[], bigint[], int[], uuid[], text[], text[], text[], bigint, bigint[]);

CREATE FUNCTION system.append_batch(
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
    versions bigint[];
    n_known int;
    start_head bigint;
    oldest_known bigint;
    next_position bigint;
    current_version bigint;
    e bigint;
    event_command int[];
    event_ordinal int[];
BEGIN
    PERFORM system.lock_log();
    SELECT coalesce(max(ev.position), 0) INTO start_head FROM system.events ev;
    next_position := start_head;

    -- Known versions read more than 10,000 positions ago are not worth the scan: look them up.
    SELECT min(k.h) INTO oldest_known FROM unnest(p_known_versions, p_known_as_of) AS k(v, h)
     WHERE k.v >= 0 AND k.h BETWEEN start_head - 10000 AND start_head;

    -- The version of each command's stream before the batch: known and not appended to since, or
    -- looked up (index only).
    SELECT array_agg(CASE WHEN u.kv >= 0 AND u.kh >= oldest_known AND u.kh <= start_head AND coalesce(t.last, 0) <= u.kh
                          THEN u.kv
                          ELSE coalesce((SELECT max(ev.stream_version) FROM system.events ev WHERE ev.stream_id = u.s), 0) END
                     ORDER BY u.ord),
           count(*) FILTER (WHERE u.kv >= 0 AND u.kh >= oldest_known AND u.kh <= start_head AND coalesce(t.last, 0) <= u.kh)
      INTO versions, n_known
      FROM unnest(p_streams, p_known_versions, p_known_as_of) WITH ORDINALITY AS u(s, kv, kh, ord)
      LEFT JOIN (SELECT ev.stream_id, max(ev.position) AS last FROM system.events ev
                  WHERE ev.position > oldest_known GROUP BY ev.stream_id) t ON t.stream_id = u.s;

    IF -3 = ALL (p_expected) THEN
        -- Every command accepts any version: command c's events follow those of the commands before
        -- it, in the log and in its stream.
        RETURN QUERY
        WITH cmd AS (
            SELECT u.c::int AS c, u.s, u.n,
                   start_head + sum(u.n) OVER (ORDER BY u.c) - u.n AS position_base,
                   u.v + sum(u.n) OVER (PARTITION BY u.s ORDER BY u.c) - u.n AS version_base
              FROM unnest(p_streams, p_counts, versions) WITH ORDINALITY AS u(s, n, v, c)
        ), numbered AS (
            SELECT cmd.s, cmd.version_base + o AS version, row_number() OVER (ORDER BY cmd.c, o) AS j
              FROM cmd, generate_series(1, cmd.n) AS o
        ), inserted AS (
            INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
            SELECT start_head + x.j, x.s, x.version, u.id, u.t, u.d::jsonb, u.m::jsonb
              FROM numbered x JOIN unnest(p_event_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS u(id, t, d, m, j)
                ON u.j = x.j
        )
        SELECT cmd.c, 'appended', cmd.position_base + 1, cmd.version_base + cmd.n,
               start_head + cardinality(p_event_ids), n_known
          FROM cmd ORDER BY cmd.c;
        PERFORM pg_notify('system_events', (start_head + cardinality(p_event_ids))::text);
        RETURN;
    END IF;

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
        known := n_known;
        RETURN NEXT;
    END LOOP;
END $$;
