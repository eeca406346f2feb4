-- Record changes no longer append under the log lock inside the writer's transaction. Doing so
-- serialized every write to every table (lock held through commit, plus the lookups of the append)
-- and capped single-row inserts at a few hundred per second. Instead the change trigger queues the
-- event in system.pending_events (plain insert, no lock, committed or rolled back with the change),
-- and a sequencer moves committed queued events into the log in batches, under the log lock, in
-- queue order: "a single sequencer that assigns positions to committed rows" (ARCHITECTURE.md).
-- Positions therefore still follow commit order and no consumer can skip one. The server nudges the
-- sequencer after each of its writes, runs it before answering a read of the log (so a client that
-- wrote reads its events), and on a timer for writes made by other means (psql, another node).
CREATE TABLE system.pending_events (
    id        bigserial PRIMARY KEY,
    event_id  uuid  NOT NULL,
    stream_id text  NOT NULL CHECK (strpos(stream_id, '-') > 1),
    type      text  NOT NULL,
    data      jsonb NOT NULL,
    metadata  jsonb NOT NULL DEFAULT '{}'::jsonb
);
REVOKE ALL ON system.pending_events FROM PUBLIC;

-- Moves up to p_limit queued events into the log (oldest first); returns how many it moved.
CREATE FUNCTION system.sequence_pending(p_limit int DEFAULT 1000) RETURNS int LANGUAGE plpgsql AS $$
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

-- Queues one event for the sequencer (inside the caller's transaction).
CREATE FUNCTION system.queue_event(p_stream_id text, p_type text, p_data jsonb, p_metadata jsonb DEFAULT '{}'::jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- plpgsql, not sql: a SQL function's INSERT is planned again on every call (this runs for every
    -- write statement on a tracked table).
    INSERT INTO system.pending_events (event_id, stream_id, type, data, metadata)
    VALUES (gen_random_uuid(), p_stream_id, p_type, p_data, coalesce(p_metadata, '{}'::jsonb));
END $$;
REVOKE ALL ON FUNCTION system.queue_event(text, text, jsonb, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION system.capture_record_changes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    records jsonb;
    keys jsonb;
    event_type text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(to_jsonb(n)) INTO records FROM new_rows n;
        event_type := 'RecordsInserted';
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT jsonb_agg(jsonb_build_object('new', to_jsonb(n), 'old', to_jsonb(o))) INTO records
        FROM (SELECT row_number() OVER () AS i, n FROM new_rows n) nn(i, n)
        JOIN (SELECT row_number() OVER () AS i, o FROM old_rows o) oo(i, o) USING (i);
        event_type := 'RecordsUpdated';
    ELSE
        SELECT jsonb_agg(to_jsonb(o)) INTO records FROM old_rows o;
        event_type := 'RecordsDeleted';
    END IF;
    IF records IS NULL THEN RETURN NULL; END IF;  -- the statement changed nothing
    SELECT coalesce(jsonb_agg(a.attname ORDER BY array_position(i.indkey, a.attnum)), '[]'::jsonb) INTO keys
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
    -- The body up to here is 004's; only the last step changes: queue the event instead of appending it.
    PERFORM system.queue_event('table-' || TG_TABLE_NAME, event_type,
        jsonb_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'primaryKey', keys,
                           'count', jsonb_array_length(records), 'records', records),
        system.change_metadata());
    RETURN NULL;
END $$;
