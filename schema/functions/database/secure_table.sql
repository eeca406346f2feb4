-- Row-level security on `t`, with the policy that lets project_admin (the admin key) see every row.
CREATE OR REPLACE FUNCTION system.secure_table(t regclass) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = t AND p.polname = 'project_admin_all') THEN
        EXECUTE pg_catalog.format('CREATE POLICY project_admin_all ON %s TO project_admin USING (true) WITH CHECK (true)', t);
    END IF;
END $$;
REVOKE ALL ON FUNCTION system.secure_table(regclass) FROM PUBLIC;
