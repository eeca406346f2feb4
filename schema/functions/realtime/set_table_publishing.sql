-- Turns publishing of `t` on or off (idempotent). The triggers are named insforge_to_realtime_*:
-- AFTER triggers fire in name order, so the statement's Records* event (insforge_records_*) is
-- queued before its messages.
CREATE OR REPLACE FUNCTION realtime.set_table_publishing(t regclass, enabled boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT enabled THEN
        EXECUTE format('DROP TRIGGER IF EXISTS insforge_to_realtime_inserted ON %s', t);
        EXECUTE format('DROP TRIGGER IF EXISTS insforge_to_realtime_updated ON %s', t);
        EXECUTE format('DROP TRIGGER IF EXISTS insforge_to_realtime_deleted ON %s', t);
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = 'insforge_to_realtime_inserted') THEN RETURN; END IF;
    EXECUTE format('CREATE TRIGGER insforge_to_realtime_inserted AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION realtime.publish_record_changes()', t);
    EXECUTE format('CREATE TRIGGER insforge_to_realtime_updated AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION realtime.publish_record_changes()', t);
    EXECUTE format('CREATE TRIGGER insforge_to_realtime_deleted AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION realtime.publish_record_changes()', t);
END $$;
REVOKE ALL ON FUNCTION realtime.set_table_publishing(regclass, boolean) FROM PUBLIC;
