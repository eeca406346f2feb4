-- Events are immutable: no UPDATE, DELETE or TRUNCATE of system.events, whoever asks.
CREATE OR REPLACE FUNCTION system.reject_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'system.events is append-only (% rejected)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON system.events
    FOR EACH ROW EXECUTE FUNCTION system.reject_event_change();
CREATE OR REPLACE TRIGGER events_no_truncate BEFORE TRUNCATE ON system.events
    FOR EACH STATEMENT EXECUTE FUNCTION system.reject_event_change();
