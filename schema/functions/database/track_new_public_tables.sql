-- Attaches the record-change triggers to public tables made by a raw-SQL run, as their owner (see
-- system.record_raw_sql).
CREATE OR REPLACE FUNCTION system.track_new_public_tables() RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT system.track_public_tables() $$;
REVOKE ALL ON FUNCTION system.track_new_public_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION system.track_new_public_tables() TO project_admin;
GRANT EXECUTE ON FUNCTION system.track_new_public_tables() TO insforge_sql;
