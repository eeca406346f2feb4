-- The record-change trigger (statement level, transition tables; attached by system.track_table):
-- one Records* event per statement and table on `table-<name>`, with every changed row (new values;
-- old values too for updates and deletes) and the primary-key columns, queued for the sequencer in
-- the writer's transaction. Rows are referenced as `alias.*`, which always means the whole row (a
-- bare alias means a column of that name when the table has one).
--
-- Functions that run as their owner look names up in pg_catalog and then pg_temp only: with `public`
-- on their path, anyone who may create objects there (project_admin) could put a function or
-- operator in the way of an unqualified name; with pg_temp left implicit it would be searched first
-- for tables. Every other name in them is schema-qualified.
CREATE OR REPLACE FUNCTION system.capture_record_changes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    records jsonb;
    keys jsonb;
    event_type text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(to_jsonb(nr.*)) INTO records FROM new_rows nr;
        event_type := 'RecordsInserted';
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT jsonb_agg(jsonb_build_object('new', nn.n, 'old', oo.o)) INTO records
        FROM (SELECT row_number() OVER () AS i, to_jsonb(nr.*) AS n FROM new_rows nr) nn
        JOIN (SELECT row_number() OVER () AS i, to_jsonb(orr.*) AS o FROM old_rows orr) oo USING (i);
        event_type := 'RecordsUpdated';
    ELSE
        SELECT jsonb_agg(to_jsonb(orr.*)) INTO records FROM old_rows orr;
        event_type := 'RecordsDeleted';
    END IF;
    IF records IS NULL THEN RETURN NULL; END IF;  -- the statement changed nothing
    SELECT coalesce(jsonb_agg(a.attname ORDER BY array_position(i.indkey, a.attnum)), '[]'::jsonb) INTO keys
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
    PERFORM system.queue_event('table-' || TG_TABLE_NAME, event_type,
        jsonb_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'primaryKey', keys,
                           'count', jsonb_array_length(records), 'records', records),
        system.change_metadata());
    RETURN NULL;
END $$;
