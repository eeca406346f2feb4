-- The caller's user id (the claims' `sub` when it is a UUID), for policies.
--
-- Storage's default policies call it, so their migration (006_storage.sql, applied before any
-- function file) cannot make them: they are made here, when this file first creates the function,
-- and never again. Replacing the function keeps them (a policy refers to it, not to its text), and a
-- project may have replaced them since.
SELECT set_config('insforge.creating_auth_uid', (to_regprocedure('auth.uid()') IS NULL)::text, true);

CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN auth.jwt()->>'sub' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN (auth.jwt()->>'sub')::uuid END
$$;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, project_admin;

-- The defaults: anyone reads objects of public buckets; a signed-in user reads, overwrites and
-- deletes what they uploaded (project_admin's policy is in 006_storage.sql).
DO $$
BEGIN
    IF current_setting('insforge.creating_auth_uid')::boolean THEN
        CREATE POLICY objects_read ON storage.objects FOR SELECT TO anon, authenticated
            USING (uploaded_by = auth.uid() OR EXISTS (SELECT 1 FROM storage.buckets b WHERE b.name = bucket AND b.public));
        CREATE POLICY objects_insert ON storage.objects FOR INSERT TO authenticated
            WITH CHECK (uploaded_by = auth.uid());
        CREATE POLICY objects_update ON storage.objects FOR UPDATE TO authenticated
            USING (uploaded_by = auth.uid()) WITH CHECK (uploaded_by = auth.uid());
        CREATE POLICY objects_delete ON storage.objects FOR DELETE TO authenticated
            USING (uploaded_by = auth.uid());
    END IF;
END $$;
