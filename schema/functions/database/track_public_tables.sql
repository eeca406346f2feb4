-- Tracks every ordinary table of the public schema that is not tracked yet (after any DDL).
CREATE OR REPLACE FUNCTION system.track_public_tables() RETURNS int LANGUAGE plpgsql AS $$
DECLARE r record; n int := 0;
BEGIN
    FOR r IN SELECT c.oid FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
             WHERE s.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'insforge_records_inserted')
    LOOP
        PERFORM system.track_table(r.oid);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
