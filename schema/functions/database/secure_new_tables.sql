-- The event trigger: every table created in the public schema is secured (system.secure_table) in the
-- creating statement, whoever made it.
CREATE OR REPLACE FUNCTION system.secure_new_tables() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
             WHERE c.object_type IN ('table', 'partitioned table') AND c.schema_name = 'public' AND c.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
    LOOP
        PERFORM system.secure_table(r.objid::regclass);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION system.secure_new_tables() FROM PUBLIC;

-- Event triggers need a superuser; a server that runs without one still refuses unexposed tables (no grants).
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        DROP EVENT TRIGGER IF EXISTS insforge_secure_new_tables;
        CREATE EVENT TRIGGER insforge_secure_new_tables ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') EXECUTE FUNCTION system.secure_new_tables();
    ELSE
        RAISE NOTICE 'not a superuser: new tables will not get row-level security automatically';
    END IF;
END $$;
