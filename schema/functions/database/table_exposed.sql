-- Whether the request roles may read `t`.
CREATE OR REPLACE FUNCTION system.table_exposed(t regclass) RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.has_table_privilege('anon', t, 'SELECT') OR pg_catalog.has_table_privilege('authenticated', t, 'SELECT')
$$;
