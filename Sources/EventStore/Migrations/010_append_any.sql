-- Group commit, the common case: every command of the batch accepts any stream version.
--
-- append_batch (009) did all of its work under the log lock, which is held until commit: it parsed
-- the events' JSON, numbered them with window functions and built one result row per command. Here
-- only what depends on the log's head is done under the lock:
--   * the data come as jsonb, parsed while the call's arguments are read, before the lock;
--   * the caller gives each event its command (p_event_command) and its ordinal among the batch's
--     events of its stream (p_event_within), so the insert needs no numbering;
--   * the answer is one row, the head before the batch and the version of each command's stream
--     before it, from which the caller works out every position and version.
-- Duplicate event ids fail the insert (unique index), as in append_batch: the caller then retries
-- command by command through system.append_events, which answers retries.
CREATE FUNCTION system.append_any(
    p_streams text[], p_event_command int[], p_event_within int[],
    p_event_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[],
    p_known_versions bigint[], p_known_as_of bigint[],
    OUT start_head bigint, OUT versions bigint[], OUT known int, OUT recorded_at timestamptz
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    oldest_known bigint;
BEGIN
    PERFORM system.lock_log();
    SELECT coalesce(max(ev.position), 0) INTO start_head FROM system.events ev;

    -- As in append_batch: a known version is used unless its stream was appended to after the head
    -- it was exact at (one range scan of the positions since the oldest such head); others are looked up.
    SELECT min(k.h) INTO oldest_known FROM unnest(p_known_versions, p_known_as_of) AS k(v, h)
     WHERE k.v >= 0 AND k.h BETWEEN start_head - 10000 AND start_head;
    SELECT array_agg(CASE WHEN u.kv >= 0 AND u.kh >= oldest_known AND u.kh <= start_head AND coalesce(t.last, 0) <= u.kh
                          THEN u.kv
                          ELSE coalesce((SELECT max(ev.stream_version) FROM system.events ev WHERE ev.stream_id = u.s), 0) END
                     ORDER BY u.ord),
           count(*) FILTER (WHERE u.kv >= 0 AND u.kh >= oldest_known AND u.kh <= start_head AND coalesce(t.last, 0) <= u.kh)
      INTO versions, known
      FROM unnest(p_streams, p_known_versions, p_known_as_of) WITH ORDINALITY AS u(s, kv, kh, ord)
      LEFT JOIN (SELECT ev.stream_id, max(ev.position) AS last FROM system.events ev
                  WHERE ev.position > oldest_known GROUP BY ev.stream_id) t ON t.stream_id = u.s;

    INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
    SELECT start_head + u.j, p_streams[u.c], versions[u.c] + u.w, u.id, u.t, u.d, u.m
      FROM unnest(p_event_command, p_event_within, p_event_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS u(c, w, id, t, d, m, j);
    PERFORM pg_notify('system_events', (start_head + cardinality(p_event_ids))::text);
    recorded_at := now();
END $$;
