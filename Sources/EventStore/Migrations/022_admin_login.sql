-- Admin records and RPC requests log in as insforge_admin_login: no privileges of its own (NOINHERIT),
-- it may only become project_admin. A function that builds RESET ROLE at run time lands on this empty
-- role, not on the server's. (A separate role from insforge_authenticator, which must never be able
-- to become project_admin.) The server gives it LOGIN and a password at start-up.
SELECT system.change_roles(ARRAY[
    $s$DO $d$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'insforge_admin_login') THEN
        CREATE ROLE insforge_admin_login NOLOGIN NOINHERIT; END IF; END $d$$s$,
    'GRANT project_admin TO insforge_admin_login']);
GRANT USAGE ON SCHEMA system TO insforge_admin_login;
GRANT EXECUTE ON FUNCTION system.run_as(text, text, text, text, text[], boolean, boolean) TO insforge_admin_login;
