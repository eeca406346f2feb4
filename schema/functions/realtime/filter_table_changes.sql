-- Row-level security of table channels: while a published table has it, the hub asks, for each
-- batch, which changes each non-admin subscriber gets, in one call per table and batch (the table,
-- its row-level security flag and its primary key are looked up once, then each caller's check runs
-- as that caller).
--
-- What each caller (p_roles[i], p_claims[i]) gets of a batch of `p_table`'s change messages
-- (`p_payloads`, a JSON array of their payloads, in log order): an INSERT or UPDATE whose row (by
-- primary key) the caller can see now comes as published (payload NULL); a DELETE comes with the old
-- row's primary key only (the row is gone, so nothing can be checked); anything else is left out, and
-- so is everything when the table has no primary key. Rows are (caller, ordinal), both 1-based.
-- A table without row-level security needs no check: its one row (0, 0) means everything goes to
-- everyone. A caller whose check fails (it may not read the table, its role is not one of ours)
-- gets nothing: deny, not leak. Its rows are gathered before any is returned, so a check failing
-- half-way returns none of them.
CREATE OR REPLACE FUNCTION realtime.filter_table_changes(p_table text, p_roles text[], p_claims text[], p_payloads jsonb)
RETURNS TABLE (caller int, ord int, payload text) LANGUAGE plpgsql AS $$
DECLARE
    t regclass := to_regclass(format('public.%I', p_table));
    own_role text := current_setting('role');
    found_row text;
    keys text[];
    check_sql text;
    ords int[];
    payloads text[];
BEGIN
    IF t IS NULL THEN RETURN; END IF;
    IF NOT (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = t) THEN
        RETURN QUERY SELECT 0, 0, NULL::text;
        RETURN;
    END IF;
    SELECT string_agg(format('r.%I = (k.v->''record''->>%L)::%s', a.attname, a.attname, format_type(a.atttypid, a.atttypmod)), ' AND '),
           array_agg(a.attname::text)
      INTO found_row, keys
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = t AND i.indisprimary;
    IF found_row IS NULL THEN RETURN; END IF;
    check_sql := format($q$
        SELECT array_agg(k.ord::int ORDER BY k.ord),
               array_agg(CASE WHEN k.v->>'operation' = 'DELETE' THEN
                             jsonb_set(k.v, '{old_record}', coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(k.v->'old_record') e
                                                                       WHERE e.key = ANY ($2)), '{}'::jsonb))::text
                         END ORDER BY k.ord)
          FROM jsonb_array_elements($1) WITH ORDINALITY AS k(v, ord)
         WHERE k.v->>'operation' = 'DELETE'
            OR (k.v->>'operation' IN ('INSERT', 'UPDATE') AND EXISTS (SELECT 1 FROM %s r WHERE %s))$q$, t, found_row);
    FOR i IN 1 .. coalesce(cardinality(p_roles), 0) LOOP
        IF p_roles[i] IS NOT NULL AND p_roles[i] NOT IN ('anon', 'authenticated', 'project_admin') THEN CONTINUE; END IF;
        ords := NULL;
        payloads := NULL;
        BEGIN
            -- As realtime.act_as (which the callers' roles may not execute, so it is not called here).
            PERFORM set_config('role', coalesce(p_roles[i], own_role), true), set_config('request.jwt.claims', p_claims[i], true),
                    set_config('realtime.channel_name', 'table:' || p_table, true);
            EXECUTE check_sql INTO ords, payloads USING p_payloads, keys;
        EXCEPTION WHEN OTHERS THEN
            ords := NULL;  -- this caller gets nothing
        END;
        RETURN QUERY SELECT i, u.o, u.p FROM unnest(ords, payloads) AS u(o, p);
    END LOOP;
    PERFORM set_config('role', own_role, true);
END $$;
REVOKE ALL ON FUNCTION realtime.filter_table_changes(text, text[], text[], jsonb) FROM PUBLIC;
