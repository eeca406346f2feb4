-- Records requests of anon and authenticated callers run on connections that log in as
-- insforge_authenticator (PostgREST's pattern): a role with no privileges of its own (NOINHERIT),
-- that may only become anon or authenticated. A function that builds RESET ROLE at run time goes back
-- to this empty role, never to the server's. The server gives it LOGIN and a password at start-up.
-- Roles are cluster-wide: migrations of other databases may change the same role at the same time
-- ("tuple concurrently updated"), so the change is retried.
DO $$
DECLARE attempt int;
BEGIN
    FOR attempt IN 1..50 LOOP
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'insforge_authenticator') THEN
                CREATE ROLE insforge_authenticator NOLOGIN NOINHERIT;
            END IF;
            GRANT anon, authenticated TO insforge_authenticator;
            EXIT;
        EXCEPTION WHEN duplicate_object OR unique_violation OR internal_error THEN
            IF attempt = 50 THEN RAISE; END IF;
            PERFORM pg_sleep(0.02 * attempt);
        END;
    END LOOP;
END $$;
GRANT USAGE ON SCHEMA system TO insforge_authenticator;
GRANT EXECUTE ON FUNCTION system.run_as(text, text, text, text, text[], boolean, boolean) TO insforge_authenticator;
