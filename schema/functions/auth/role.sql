-- The caller's role from the claims, for policies.
CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$ SELECT auth.jwt()->>'role' $$;
GRANT EXECUTE ON FUNCTION auth.role() TO anon, authenticated, project_admin;
