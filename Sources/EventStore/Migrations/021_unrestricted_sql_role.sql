-- The unrestricted raw-SQL route logs in as insforge_sql: everything an admin's SQL needs in this
-- database (the public schema in full, reading the server's schemas, acting as any request role) and
-- nothing of the cluster superuser's (no COPY ... PROGRAM, no untrusted languages, no ALTER SYSTEM, no
-- other databases, no writes to the server's own schemas). The server gives it LOGIN and a password
-- at start-up; where it cannot, the route runs as the server's role as before.
SELECT system.change_roles(ARRAY[
    $s$DO $d$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'insforge_sql') THEN
        CREATE ROLE insforge_sql NOLOGIN INHERIT; END IF; END $d$$s$,
    'GRANT anon, authenticated, project_admin TO insforge_sql']);
-- Reads every row of the public schema whatever its policies, as the server's role did.
SELECT system.change_roles(ARRAY['ALTER ROLE insforge_sql BYPASSRLS'], p_optional => true);
GRANT USAGE, CREATE ON SCHEMA public TO insforge_sql;
GRANT ALL ON ALL TABLES IN SCHEMA public TO insforge_sql;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO insforge_sql;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO insforge_sql;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO insforge_sql;
-- What it or the restricted route (project_admin) makes in public is the admin's, as the server's own
-- tables are; sequences serve whoever may insert.
ALTER DEFAULT PRIVILEGES FOR ROLE insforge_sql IN SCHEMA public GRANT ALL ON TABLES TO project_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE insforge_sql IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, project_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE project_admin IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated;
-- Tables of the public schema belong to project_admin (the tables API hands new ones over too), so the
-- admin's SQL may alter and drop them without the superuser; the realtime tables, whose policies
-- decide who may subscribe and publish, belong to insforge_sql, so admins write those policies.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND pg_catalog.pg_get_userbyid(c.relowner) = current_user
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO project_admin', r.oid::regclass);
    END LOOP;
END $$;
ALTER TABLE realtime.channels OWNER TO insforge_sql;
ALTER TABLE realtime.messages OWNER TO insforge_sql;
GRANT USAGE ON SCHEMA system, auth, realtime, storage TO insforge_sql;
GRANT SELECT ON ALL TABLES IN SCHEMA system, auth, realtime, storage TO insforge_sql;
ALTER DEFAULT PRIVILEGES IN SCHEMA system, auth, realtime, storage GRANT SELECT ON TABLES TO insforge_sql;
GRANT EXECUTE ON FUNCTION system.record_raw_sql(uuid, jsonb, jsonb), system.track_new_public_tables() TO insforge_sql;

-- Records a run of either route: restricted runs from project_admin, unrestricted ones from insforge_sql.
CREATE OR REPLACE FUNCTION system.record_raw_sql(p_event_id uuid, p_data jsonb, p_metadata jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (p_data->>'unrestricted')::boolean IS DISTINCT FROM (session_user = 'insforge_sql') THEN
        RAISE EXCEPTION 'this login may not record that run' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM system.write_event(p_event_id, 'sql-' || p_event_id::text, 'RawSQLExecuted', p_data, p_metadata);
END $$;
