-- Records requests of anon and authenticated callers run on connections that log in as
-- insforge_authenticator (PostgREST's pattern): a role with no privileges of its own (NOINHERIT),
-- that may only become anon or authenticated. A function that builds RESET ROLE at run time goes back
-- to this empty role, never to the server's. The server gives it LOGIN and a password at start-up.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'insforge_authenticator') THEN
        BEGIN
            CREATE ROLE insforge_authenticator NOLOGIN NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- another database's migration won
        END;
    END IF;
END $$;
GRANT anon, authenticated TO insforge_authenticator;
GRANT USAGE ON SCHEMA system TO insforge_authenticator;
GRANT EXECUTE ON FUNCTION system.run_as(text, text, text, text, text[], boolean, boolean) TO insforge_authenticator;
