-- The sequencer: moves up to p_limit queued events (system.pending_events) into the log, oldest
-- first, under the log lock; returns how many it moved. The server nudges it after each of its
-- writes, runs it before answering a read of the log (so a client that wrote reads its events), and
-- on a timer for writes made by other means (psql, another node).
CREATE OR REPLACE FUNCTION system.sequence_pending(p_limit int DEFAULT 1000) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    base bigint;
    moved int;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM system.pending_events) THEN RETURN 0; END IF;
    PERFORM system.lock_log();
    -- Each statement below takes a fresh snapshot (READ COMMITTED), so after the lock it sees what
    -- a sequencer that held the lock before has moved, and moves nothing twice.
    SELECT coalesce(max(e.position), 0) INTO base FROM system.events e;
    WITH taken AS (
        DELETE FROM system.pending_events p
         WHERE p.id IN (SELECT q.id FROM system.pending_events q ORDER BY q.id LIMIT p_limit)
        RETURNING p.*
    ), numbered AS (
        SELECT t.*, row_number() OVER (ORDER BY t.id) AS ord,
               row_number() OVER (PARTITION BY t.stream_id ORDER BY t.id) AS within
          FROM taken t
    ), heads AS (
        SELECT s.stream_id,
               coalesce((SELECT max(e.stream_version) FROM system.events e WHERE e.stream_id = s.stream_id), 0) AS version
          FROM (SELECT DISTINCT n.stream_id FROM numbered n) s
    )
    INSERT INTO system.events (position, stream_id, stream_version, event_id, type, data, metadata)
    SELECT base + n.ord, n.stream_id, h.version + n.within, n.event_id, n.type, n.data, n.metadata
      FROM numbered n JOIN heads h USING (stream_id)
     ORDER BY n.ord;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved > 0 THEN
        PERFORM pg_notify('system_events', (base + moved)::text);
    END IF;
    RETURN moved;
END $$;
REVOKE ALL ON FUNCTION system.sequence_pending(int) FROM PUBLIC;
