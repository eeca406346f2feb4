-- Group commit, the common case: every command of the batch accepts any stream version.
--
-- append_batch (009) did all of its work under the log lock, which is held until commit: it parsed
-- the events' JSON, numbered them with window functions and built one result row per command. Here
-- only what depends on the log's head is done under the lock:
--   * the data come as jsonb, parsed while the call's arguments are read, before the lock;
--   * the streams' versions are worked out before the lock, as of the head then; under the lock one
--     short range scan checks that none of the batch's streams was appended to since (positions up
--     to a head are all committed, as appends hold the lock through commit); only if one was are
--     they worked out again;
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

CREATE FUNCTION system.append_any(
    p_streams text[], p_event_command int[], p_event_within int[],
    p_event_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[],
    p_known_versions bigint[], p_known_as_of bigint[],
    OUT start_head bigint, OUT versions bigint[], OUT known int, OUT recorded_at timestamptz
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    checked bigint;
BEGIN
    SELECT coalesce(max(ev.position), 0) INTO checked FROM system.events ev;
    SELECT s.versions, s.known INTO versions, known
      FROM system.stream_versions(p_streams, p_known_versions, p_known_as_of, checked) s;

    PERFORM system.lock_log();
    SELECT coalesce(max(ev.position), 0) INTO start_head FROM system.events ev;
    -- OFFSET 0 keeps this a scan of the few positions since `checked` (the primary key), not of
    -- every version of the batch's streams.
    IF start_head > checked AND EXISTS (SELECT 1 FROM (SELECT ev.stream_id FROM system.events ev WHERE ev.position > checked OFFSET 0) x
                                         WHERE x.stream_id = ANY (p_streams)) THEN
        SELECT s.versions, s.known INTO versions, known
          FROM system.stream_versions(p_streams, p_known_versions, p_known_as_of, start_head) s;
    END IF;

    INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
    SELECT start_head + u.j, p_streams[u.c], versions[u.c] + u.w, u.id, u.t, u.d, u.m
      FROM unnest(p_event_command, p_event_within, p_event_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS u(c, w, id, t, d, m, j);
    PERFORM pg_notify('system_events', (start_head + cardinality(p_event_ids))::text);
    recorded_at := now();
END $$;
