-- The published table `p_channel` names (`table:<name>`, public schema), or NULL.
CREATE OR REPLACE FUNCTION realtime.published_table(p_channel text) RETURNS regclass LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE left(p_channel, 6) = 'table:' AND n.nspname = 'public' AND c.relname = substr(p_channel, 7)
       AND EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'insforge_to_realtime_inserted')
$$;
GRANT EXECUTE ON FUNCTION realtime.published_table(text) TO anon, authenticated, project_admin;
