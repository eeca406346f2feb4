-- Appends one command's events to one stream. Must run after system.lock_log().
-- p_expected: NULL any, -1 no stream, -2 stream exists, n >= 0 exactly version n.
-- outcome: 'appended', 'duplicate' (all event ids already stored in this stream: a retry),
-- 'wrong_version' or 'id_reused' (some ids stored elsewhere or only some of them).
--
-- Appends run with enable_seqscan off: a long-lived connection otherwise keeps the generic plan it
-- made while the log was nearly empty (a sequential scan), and every append gets slower as the log grows.
CREATE OR REPLACE FUNCTION system.append_locked(
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
