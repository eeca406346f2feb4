-- The database area: the roles requests and raw SQL run as, and what each may do in this database.
-- The records API runs every request as its caller (SET LOCAL ROLE to a request role, so row-level
-- security applies); triggers append every record change to the log in the same transaction. The
-- triggers, the claims helpers and the records API's functions are in schema/functions/database/
-- and schema/functions/auth/.
--
-- Roles (cluster-wide; the server gives the logins LOGIN and a password at start-up):
--   anon, authenticated, project_admin  the request roles; the restricted raw-SQL route logs in as
--                                       project_admin itself, so its statements have no more
--                                       privileged session to return to
--   insforge_authenticator              records requests of anon and authenticated callers
--   insforge_admin_login                admin records and RPC requests
--   insforge_sql                        the unrestricted raw-SQL route

-- Roles may exist already (other databases on the server), and other databases' migrations may change
-- the same role at the same moment ("tuple concurrently updated"): each statement is retried. One that
-- needs a superuser and cannot have one is skipped with a notice when `p_optional`. A helper of this
-- migration only (pg_temp): it goes with the session.
CREATE OR REPLACE FUNCTION pg_temp.change_roles(p_statements text[], p_optional boolean DEFAULT false) RETURNS void
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

-- CREATE ROLE unless the role exists, as one statement for change_roles.
CREATE OR REPLACE FUNCTION pg_temp.create_role(p_role text, p_options text) RETURNS text LANGUAGE sql AS $$
    SELECT format('DO $d$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %L) THEN CREATE ROLE %I %s; END IF; END $d$',
                  p_role, p_role, p_options)
$$;

SELECT pg_temp.change_roles(ARRAY[
    pg_temp.create_role('anon', 'NOLOGIN'),
    pg_temp.create_role('authenticated', 'NOLOGIN'),
    pg_temp.create_role('project_admin', 'NOLOGIN'),
    -- The server becomes a request role for each request.
    format('GRANT anon, authenticated, project_admin TO %I', current_user),
    -- No privileges of its own (NOINHERIT), and it may only become anon or authenticated (PostgREST's
    -- pattern): a function that builds RESET ROLE at run time lands on this empty role, never on the server's.
    pg_temp.create_role('insforge_authenticator', 'NOLOGIN NOINHERIT'),
    'GRANT anon, authenticated TO insforge_authenticator',
    -- Everything an admin's SQL needs in this database (the public schema in full, reading the server's
    -- schemas, acting as any request role) and nothing of the cluster superuser's (no COPY ... PROGRAM, no
    -- untrusted languages, no ALTER SYSTEM, no other databases, no writes to the server's own schemas).
    pg_temp.create_role('insforge_sql', 'NOLOGIN INHERIT'),
    'GRANT anon, authenticated, project_admin TO insforge_sql',
    -- As insforge_authenticator, for admins: it may only become project_admin. A separate role, as
    -- insforge_authenticator must never be able to become project_admin.
    pg_temp.create_role('insforge_admin_login', 'NOLOGIN NOINHERIT'),
    'GRANT project_admin TO insforge_admin_login']);
-- insforge_sql reads every row of the public schema whatever its policies, as the server's role does.
SELECT pg_temp.change_roles(ARRAY['ALTER ROLE insforge_sql BYPASSRLS'], p_optional => true);

-- The public schema, for the request roles.
GRANT USAGE ON SCHEMA public TO anon, authenticated, project_admin;
GRANT CREATE ON SCHEMA public TO project_admin;  -- restricted raw SQL may create tables
GRANT ALL ON ALL TABLES IN SCHEMA public TO project_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO anon, authenticated, project_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO project_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, project_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, project_admin;

-- Exposure: anon and authenticated reach a table of the public schema only once it is exposed
-- (system.set_table_exposed). Tables made by the tables API are exposed when made; any other (raw
-- SQL, a database that existed before) only once an admin exposes it
-- (`PATCH /api/database/tables/:t/schema {"exposed": true}`, event TableExposureChanged). Every new
-- table of the public schema also gets row-level security with no policy for the request roles,
-- whoever made it (system.secure_new_tables, an event trigger). Tables that exist now were not made
-- by the tables API (the log is new): unexposed.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM anon, authenticated;

-- The auth schema holds private read models: only the claims helpers are reachable from the request roles.
GRANT USAGE ON SCHEMA auth TO anon, authenticated, project_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA auth FROM anon, authenticated, project_admin;

-- The restricted raw-SQL route (project_admin) records its runs and tracks new tables through
-- functions of the system schema; the logins call system.run_as.
GRANT USAGE ON SCHEMA system TO project_admin;
GRANT USAGE ON SCHEMA system TO insforge_authenticator;

-- insforge_sql: the public schema in full.
GRANT USAGE, CREATE ON SCHEMA public TO insforge_sql;
GRANT ALL ON ALL TABLES IN SCHEMA public TO insforge_sql;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO insforge_sql;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO insforge_sql;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO insforge_sql;
-- What it or the restricted route (project_admin) makes in public is the admin's, as the server's own
-- tables are; sequences serve whoever may insert.
ALTER DEFAULT PRIVILEGES FOR ROLE insforge_sql IN SCHEMA public GRANT ALL ON TABLES TO project_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE insforge_sql IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, project_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE project_admin IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated;
-- Tables of the public schema belong to project_admin (the tables API hands new ones over too), so the
-- admin's SQL may alter and drop them without the superuser.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND pg_catalog.pg_get_userbyid(c.relowner) = current_user
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO project_admin', r.oid::regclass);
    END LOOP;
END $$;
-- insforge_sql reads the server's schemas (realtime and storage grant theirs in their migrations).
GRANT USAGE ON SCHEMA system, auth TO insforge_sql;
GRANT SELECT ON ALL TABLES IN SCHEMA system, auth TO insforge_sql;
ALTER DEFAULT PRIVILEGES IN SCHEMA system, auth GRANT SELECT ON TABLES TO insforge_sql;

GRANT USAGE ON SCHEMA system TO insforge_admin_login;
