-- The restricted raw-SQL route logs in as project_admin itself (the server gives the role LOGIN and a
-- password derived from its secret at start-up), so a statement has no more privileged session to
-- return to: RESET ROLE, SET ROLE and set_config('role', ...) stay within project_admin. What the
-- route must do beyond the caller's statements goes through these two functions, which run as their
-- owner and do one thing each.

-- Records the run (RawSQLExecuted on a new sql-<id> stream) in the caller's transaction.
CREATE FUNCTION system.record_raw_sql(p_event_id uuid, p_data jsonb, p_metadata jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (p_data->>'unrestricted')::boolean IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'only restricted runs are recorded here' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM system.write_event(p_event_id, 'sql-' || p_event_id::text, 'RawSQLExecuted', p_data, p_metadata);
END $$;

-- Attaches the record-change triggers to public tables made by the statements.
CREATE FUNCTION system.track_new_public_tables() RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT system.track_public_tables() $$;

REVOKE ALL ON FUNCTION system.record_raw_sql(uuid, jsonb, jsonb), system.track_new_public_tables() FROM PUBLIC;
GRANT USAGE ON SCHEMA system TO project_admin;
GRANT EXECUTE ON FUNCTION system.record_raw_sql(uuid, jsonb, jsonb), system.track_new_public_tables() TO project_admin;
