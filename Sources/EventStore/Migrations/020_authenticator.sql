-- Records requests of anon and authenticated callers run on connections that log in as
-- insforge_authenticator (PostgREST's pattern): a role with no privileges of its own (NOINHERIT),
-- that may only become anon or authenticated. A function that builds RESET ROLE at run time goes back
-- to this empty role, never to the server's. The server gives it LOGIN and a password at start-up.
-- Runs statements that change cluster-wide roles. Migrations of other databases on the same cluster
-- may change the same role at the same moment ("tuple concurrently updated"): each try is retried.
-- A statement that needs a superuser and cannot have one is skipped with a notice when `optional`.
CREATE FUNCTION system.change_roles(p_statements text[], p_optional boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    attempt int;
    statement text;
BEGIN
    FOREACH statement IN ARRAY p_statements LOOP
        FOR attempt IN 1..50 LOOP
            BEGIN
                EXECUTE statement;
                EXIT;
            EXCEPTION
                WHEN duplicate_object OR unique_violation OR internal_error THEN
                    IF attempt = 50 THEN RAISE; END IF;
                    PERFORM pg_sleep(0.02 * attempt);
                WHEN insufficient_privilege THEN
                    IF NOT p_optional THEN RAISE; END IF;
                    RAISE NOTICE 'skipped (needs a superuser): %', statement;
                    EXIT;
            END;
        END LOOP;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION system.change_roles(text[], boolean) FROM PUBLIC;

SELECT system.change_roles(ARRAY[
    $s$DO $d$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'insforge_authenticator') THEN
        CREATE ROLE insforge_authenticator NOLOGIN NOINHERIT; END IF; END $d$$s$,
    'GRANT anon, authenticated TO insforge_authenticator']);
GRANT USAGE ON SCHEMA system TO insforge_authenticator;
GRANT EXECUTE ON FUNCTION system.run_as(text, text, text, text, text[], boolean, boolean) TO insforge_authenticator;
