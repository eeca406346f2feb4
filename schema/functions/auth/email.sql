-- The caller's e-mail address from the claims, for policies.
CREATE OR REPLACE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$ SELECT auth.jwt()->>'email' $$;
GRANT EXECUTE ON FUNCTION auth.email() TO anon, authenticated, project_admin;
