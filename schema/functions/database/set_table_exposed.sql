-- Exposure (schema/migrations/004_database.sql): grants the request roles their row operations on
-- `t`, or takes every privilege they hold on it away.
CREATE OR REPLACE FUNCTION system.set_table_exposed(t regclass, exposed boolean) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF exposed THEN
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO anon, authenticated', t);
    ELSE
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM anon, authenticated', t);
    END IF;
END $$;
REVOKE ALL ON FUNCTION system.set_table_exposed(regclass, boolean) FROM PUBLIC;
