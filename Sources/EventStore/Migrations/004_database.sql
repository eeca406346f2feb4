-- The records API runs every request as its caller: roles for SET LOCAL ROLE, the claims
-- helpers RLS policies use, and triggers that append every record change to the log in the
-- same transaction as the change.

-- Roles are cluster-wide: create them once (other databases on the server may have them already).
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'project_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- another database's migration won
            END;
        END IF;
        EXECUTE format('GRANT %I TO %I', r, current_user);
    END LOOP;
END $$;

GRANT USAGE ON SCHEMA public TO anon, authenticated, project_admin;
GRANT CREATE ON SCHEMA public TO project_admin;  -- restricted raw SQL may create tables
GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated, project_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO anon, authenticated, project_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, project_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, project_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, project_admin;

-- The caller's claims, as set by the server for each request (`request.jwt.claims`).
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN auth.jwt()->>'sub' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN (auth.jwt()->>'sub')::uuid END
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$ SELECT auth.jwt()->>'role' $$;
CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$ SELECT auth.jwt()->>'email' $$;

-- The auth schema holds private read models: only the helpers are reachable from the request roles.
GRANT USAGE ON SCHEMA auth TO anon, authenticated, project_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA auth FROM anon, authenticated, project_admin;
GRANT EXECUTE ON FUNCTION auth.jwt(), auth.uid(), auth.role(), auth.email() TO anon, authenticated, project_admin;

-- Event metadata for a change made in this transaction: the caller from the claims, the request id.
CREATE FUNCTION system.change_metadata() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'actor', jsonb_build_object(
            'type', CASE auth.role() WHEN 'project_admin' THEN 'admin' WHEN 'authenticated' THEN 'user'
                                     WHEN 'anon' THEN 'anon' ELSE 'system' END,
            'id', auth.jwt()->>'sub'),
        'requestId', nullif(current_setting('request.id', true), ''),
        'correlationId', nullif(current_setting('request.id', true), '')))
$$;

-- Statement-level triggers (transition tables): one event per statement and table, with every
-- changed row (new values; old values too for updates and deletes) and the primary-key columns.
CREATE FUNCTION system.capture_record_changes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
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
    PERFORM system.write_event(gen_random_uuid(), 'table-' || TG_TABLE_NAME, event_type,
        jsonb_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'primaryKey', keys,
                           'count', jsonb_array_length(records), 'records', records),
        system.change_metadata());
    RETURN NULL;
END $$;

-- Attaches the change triggers to `t` (idempotent).
CREATE FUNCTION system.track_table(t regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = 'insforge_records_inserted') THEN RETURN; END IF;
    EXECUTE format('CREATE TRIGGER insforge_records_inserted AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION system.capture_record_changes()', t);
    EXECUTE format('CREATE TRIGGER insforge_records_updated AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION system.capture_record_changes()', t);
    EXECUTE format('CREATE TRIGGER insforge_records_deleted AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION system.capture_record_changes()', t);
END $$;

-- Tracks every ordinary table of the public schema that is not tracked yet (after any DDL).
CREATE FUNCTION system.track_public_tables() RETURNS int LANGUAGE plpgsql AS $$
DECLARE r record; n int := 0;
BEGIN
    FOR r IN SELECT c.oid FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
             WHERE s.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'insforge_records_inserted')
    LOOP
        PERFORM system.track_table(r.oid);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- `updated_at` maintenance for tables made by the tables API.
CREATE FUNCTION system.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;
