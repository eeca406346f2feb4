-- One round trip per records request: the role, the claims and the statement in one call. The role is
-- set with set_config(..., true), so it ends with the (single-statement) transaction; the statement
-- runs after the switch, so row-level security applies to it (a cached plan is re-planned when the
-- role differs from the one it was made for). Reads are made read-only. A request for one object that
-- matches 0 or several rows raises PT406, which rolls back writes too (PostgREST answers 406).
--
-- Statements are prepared once per connection and shape (named by the md5 of their text): the records
-- API sends few shapes many times, and planning was most of the cost of a key lookup. At most 500
-- shapes per connection. The wrapper around the statement is kept cheap, as under load it cost
-- PostgreSQL more than the statement itself: no BEGIN ... EXCEPTION block (each would be a
-- subtransaction), so which shapes are prepared is remembered in a session setting per shape
-- (insforge.prepared_<md5>); a setting made in a transaction that then failed is rolled back while the
-- prepared statement stays, so a missing mark is checked against pg_prepared_statements before
-- preparing. The parameters come as text[] (NULLs included), the answer as one row (OUT parameters).
--
-- The request logins (insforge_authenticator, insforge_admin_login) may call it, and nothing else.
CREATE OR REPLACE FUNCTION system.run_as(p_role text, p_claims text, p_request_id text, p_sql text, p_binds text[], p_single boolean,
                              p_read_only boolean, OUT page_total bigint, OUT total bigint, OUT body text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    shape text := md5(p_sql);
    stmt text := 'insforge_' || shape;
    mark text := 'insforge.prepared_' || shape;
    old record;
BEGIN
    IF p_role NOT IN ('anon', 'authenticated', 'project_admin') THEN
        RAISE EXCEPTION 'unknown role %', p_role USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('role', p_role, true), set_config('request.jwt.claims', p_claims, true),
            set_config('request.id', coalesce(p_request_id, ''), true);
    IF p_read_only THEN
        -- Reads stay reads: a volatile function called by GET cannot write (25006, PostgREST's 405).
        PERFORM set_config('transaction_read_only', 'on', true);
    END IF;
    IF current_setting(mark, true) IS DISTINCT FROM 'y' THEN
        IF NOT EXISTS (SELECT 1 FROM pg_prepared_statements p WHERE p.name = stmt) THEN
            -- Keep the cache of shapes bounded. Only our shapes (insforge_ and an md5): a LIKE 'insforge\_%' would also drop the
            -- server's own prepared call of this function (insforge_records_run_as), and its next call would fail.
            IF (SELECT count(*) FROM pg_prepared_statements p WHERE p.name ~ '^insforge_[0-9a-f]{32}$') >= 500 THEN
                FOR old IN SELECT p.name FROM pg_prepared_statements p WHERE p.name ~ '^insforge_[0-9a-f]{32}$' LOOP
                    EXECUTE format('DEALLOCATE %I', old.name);
                    PERFORM set_config('insforge.prepared_' || substr(old.name, 10), '', false);
                END LOOP;
            END IF;
            EXECUTE format('PREPARE %I(text[]) AS %s', stmt, p_sql);
        END IF;
        PERFORM set_config(mark, 'y', false);
    END IF;
    EXECUTE format('EXECUTE %I(%L)', stmt, p_binds) INTO r;
    IF p_single AND r.page_total <> 1 THEN
        RAISE EXCEPTION 'JSON object requested, multiple (or no) rows returned'
            USING ERRCODE = 'PT406', DETAIL = format('The result contains %s rows', r.page_total);
    END IF;
    page_total := r.page_total;
    total := r.total;
    body := r.body;
END $$;
REVOKE ALL ON FUNCTION system.run_as(text, text, text, text, text[], boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION system.run_as(text, text, text, text, text[], boolean, boolean) TO insforge_authenticator;
GRANT EXECUTE ON FUNCTION system.run_as(text, text, text, text, text[], boolean, boolean) TO insforge_admin_login;
