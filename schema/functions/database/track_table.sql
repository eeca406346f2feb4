-- Attaches the change triggers to `t` (idempotent).
CREATE OR REPLACE FUNCTION system.track_table(t regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = 'insforge_records_inserted') THEN RETURN; END IF;
    EXECUTE format('CREATE TRIGGER insforge_records_inserted AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION system.capture_record_changes()', t);
    EXECUTE format('CREATE TRIGGER insforge_records_updated AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION system.capture_record_changes()', t);
    EXECUTE format('CREATE TRIGGER insforge_records_deleted AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION system.capture_record_changes()', t);
END $$;
