-- One round trip per records request: the role, the claims and the statement in one call.
-- The role is set with set_config(..., true), so it ends with the (single-statement) transaction;
-- the statement runs after the switch, so row-level security applies to it (a cached plan is
-- re-planned when the role differs from the one it was made for). A request for one object that
-- matches 0 or several rows raises, which rolls back writes too (PostgREST answers 406).
--
-- Statements are prepared once per connection and shape (named by the md5 of their text): the
-- records API sends few shapes many times, and planning was most of the cost of a key lookup.
-- The parameters come as one JSON array of strings and nulls (a text[] with NULLs is awkward to bind).
CREATE FUNCTION system.run_as(p_role text, p_claims text, p_request_id text, p_sql text, p_binds jsonb, p_single boolean,
                              p_read_only boolean)
RETURNS TABLE (page_total bigint, total bigint, body text) LANGUAGE plpgsql AS $$
DECLARE
    r record;
    binds text[] := ARRAY(SELECT x FROM jsonb_array_elements_text(p_binds) WITH ORDINALITY AS t(x, i) ORDER BY i);
    stmt text := 'insforge_' || md5(p_sql);
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
    BEGIN
        EXECUTE format('EXECUTE %I(%L)', stmt, binds) INTO r;
    EXCEPTION WHEN invalid_sql_statement_name THEN
        -- Not prepared on this connection yet; keep the cache of shapes bounded.
        IF (SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'insforge\_%') >= 500 THEN
            FOR old IN SELECT name FROM pg_prepared_statements WHERE name LIKE 'insforge\_%' LOOP
                EXECUTE format('DEALLOCATE %I', old.name);
            END LOOP;
        END IF;
        EXECUTE format('PREPARE %I(text[]) AS %s', stmt, p_sql);
        EXECUTE format('EXECUTE %I(%L)', stmt, binds) INTO r;
    END;
    IF p_single AND r.page_total <> 1 THEN
        RAISE EXCEPTION 'JSON object requested, multiple (or no) rows returned'
            USING ERRCODE = 'PT406', DETAIL = format('The result contains %s rows', r.page_total);
    END IF;
    page_total := r.page_total;
    total := r.total;
    body := r.body;
    RETURN NEXT;
END $$;
REVOKE ALL ON FUNCTION system.run_as(text, text, text, text, jsonb, boolean, boolean) FROM PUBLIC;
