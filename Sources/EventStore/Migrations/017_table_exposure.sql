-- Exposure: `anon` and `authenticated` reach a table of the public schema only once it is exposed.
-- Tables made by the tables API are exposed when made; any other table (raw SQL, a migration, a
-- database that existed before) is not, until an admin exposes it with
-- `PATCH /api/database/tables/:t/schema {"exposed": true}` (event `TableExposureChanged`).
-- Every new table of the public schema also gets row-level security with no policy for the request
-- roles (project_admin keeps a policy of its own), whoever made it: an event trigger does it.

ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM anon, authenticated;

-- Row-level security on `t`, with the policy that lets project_admin (the admin key) see every row.
CREATE FUNCTION system.secure_table(t regclass) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = t AND p.polname = 'project_admin_all') THEN
        EXECUTE pg_catalog.format('CREATE POLICY project_admin_all ON %s TO project_admin USING (true) WITH CHECK (true)', t);
    END IF;
END $$;

-- Grants the request roles their row operations on `t`, or takes every privilege they hold on it away.
CREATE FUNCTION system.set_table_exposed(t regclass, exposed boolean) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF exposed THEN
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO anon, authenticated', t);
    ELSE
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM anon, authenticated', t);
    END IF;
END $$;

-- Whether the request roles may read `t`.
CREATE FUNCTION system.table_exposed(t regclass) RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.has_table_privilege('anon', t, 'SELECT') OR pg_catalog.has_table_privilege('authenticated', t, 'SELECT')
$$;

-- The event trigger: every table created in the public schema is secured in the creating statement.
CREATE FUNCTION system.secure_new_tables() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
             WHERE c.object_type IN ('table', 'partitioned table') AND c.schema_name = 'public' AND c.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
    LOOP
        PERFORM system.secure_table(r.objid::regclass);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION system.secure_table(regclass), system.set_table_exposed(regclass, boolean), system.secure_new_tables() FROM PUBLIC;

-- Event triggers need a superuser; a server that runs without one still refuses unexposed tables (no grants).
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'CREATE EVENT TRIGGER insforge_secure_new_tables ON ddl_command_end '
                'WHEN TAG IN (''CREATE TABLE'', ''CREATE TABLE AS'', ''SELECT INTO'') EXECUTE FUNCTION system.secure_new_tables()';
    ELSE
        RAISE NOTICE 'not a superuser: new tables will not get row-level security automatically';
    END IF;
END $$;

-- Tables that exist now: exposed if the tables API made them (by their name in the log), else not.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    LOOP
        IF NOT EXISTS (SELECT 1 FROM system.events e
                       WHERE e.category = 'schema' AND ((e.type = 'TableCreated' AND e.data->>'table' = r.relname)
                                                        OR (e.type = 'TableAltered' AND e.data->>'newTable' = r.relname))) THEN
            PERFORM system.set_table_exposed(r.oid::regclass, false);
        END IF;
    END LOOP;
END $$;
