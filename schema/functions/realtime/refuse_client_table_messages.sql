-- Clients (anon, authenticated) may not publish on a published table's channel: what arrives there
-- is the table's changes, written by the database.
CREATE OR REPLACE FUNCTION realtime.refuse_client_table_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user IN ('anon', 'authenticated') AND realtime.published_table(NEW.channel_name) IS NOT NULL THEN
        RAISE EXCEPTION 'only the database publishes on %', NEW.channel_name USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
-- The WHEN clause keeps other channels' messages from calling the function at all.
CREATE OR REPLACE TRIGGER refuse_client_table_messages BEFORE INSERT ON realtime.messages
    FOR EACH ROW WHEN (left(NEW.channel_name, 6) = 'table:') EXECUTE FUNCTION realtime.refuse_client_table_messages();
