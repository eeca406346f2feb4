-- Records a raw-SQL run (RawSQLExecuted on a new sql-<id> stream) in the caller's transaction, for
-- either route: restricted runs from project_admin, unrestricted ones from insforge_sql. The
-- restricted route logs in as project_admin itself, so what it must do beyond the caller's statements
-- goes through functions like this one, which run as their owner and do one thing each.
CREATE OR REPLACE FUNCTION system.record_raw_sql(p_event_id uuid, p_data jsonb, p_metadata jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (p_data->>'unrestricted')::boolean IS DISTINCT FROM (session_user = 'insforge_sql') THEN
        RAISE EXCEPTION 'this login may not record that run' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM system.write_event(p_event_id, 'sql-' || p_event_id::text, 'RawSQLExecuted', p_data, p_metadata);
END $$;
REVOKE ALL ON FUNCTION system.record_raw_sql(uuid, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION system.record_raw_sql(uuid, jsonb, jsonb) TO project_admin;
GRANT EXECUTE ON FUNCTION system.record_raw_sql(uuid, jsonb, jsonb) TO insforge_sql;
