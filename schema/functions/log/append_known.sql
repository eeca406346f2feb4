-- Group commit, the common case: every command of the batch accepts any stream version.
--
-- Trusts the versions the caller knows, and lets the log's unique index on (stream_id, stream_version)
-- catch a stale one: stream versions are dense and the log is never shortened, so a known version
-- below the stream's real one makes the batch's first event of that stream collide with an event
-- already stored (unique_violation), and nothing of the batch is written. The writer then retries the
-- batch with every version looked up. A version the caller does not know (-1) is looked up under the
-- lock, where it is exact: appends hold the lock through commit.
--
-- The caller gives each event its command (p_event_command) and its ordinal among the batch's events
-- of its stream (p_event_within), so the insert needs no numbering; the answer is one row, the head
-- before the batch and the version of each command's stream before it, from which the caller works
-- out every position and version.
CREATE OR REPLACE FUNCTION system.append_known(
    p_streams text[], p_event_command int[], p_event_within int[],
    p_event_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_known_versions bigint[],
    OUT start_head bigint, OUT versions bigint[], OUT known int, OUT recorded_at timestamptz
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM system.lock_log();
    SELECT coalesce(max(ev.position), 0) INTO start_head FROM system.events ev;
    known := cardinality(p_streams) - cardinality(array_positions(p_known_versions, -1));
    IF known = cardinality(p_streams) THEN
        versions := p_known_versions;
    ELSE
        SELECT array_agg(CASE WHEN u.v >= 0 THEN u.v
                              ELSE coalesce((SELECT max(ev.stream_version) FROM system.events ev WHERE ev.stream_id = u.s), 0) END
                         ORDER BY u.o)
          INTO versions FROM unnest(p_streams, p_known_versions) WITH ORDINALITY AS u(s, v, o);
    END IF;
    INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
    SELECT start_head + u.j, p_streams[u.c], versions[u.c] + u.w, u.id, u.t, u.d, u.m
      FROM unnest(p_event_command, p_event_within, p_event_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS u(c, w, id, t, d, m, j);
    PERFORM pg_notify('system_events', (start_head + cardinality(p_event_ids))::text);
    recorded_at := now();
END $$;
