-- Tables that publish their changes to the realtime channel `table:<name>` (opt-in per table through
-- the tables API, recorded as TableRealtimeChanged) have three more statement triggers
-- (realtime.set_table_publishing), calling this: one system message per changed row in
-- realtime.messages, its event the operation (INSERT, UPDATE, DELETE), so each change reaches
-- sockets, history and webhooks as a MessagePublished event, like any other message. Without an
-- enabled channel for the name (disabled or deleted by an admin) nothing is published.
CREATE OR REPLACE FUNCTION realtime.publish_record_changes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_channel text := 'table:' || TG_TABLE_NAME;
    v_channel_id uuid;
BEGIN
    SELECT c.id INTO v_channel_id FROM realtime.resolve(v_channel) c;
    IF v_channel_id IS NULL THEN RETURN NULL; END IF;
    -- Each branch names only its own transition tables (an INSERT trigger has no old_rows).
    IF TG_OP = 'INSERT' THEN
        INSERT INTO realtime.messages (id, event_name, channel_id, channel_name, payload, sender_type)
        SELECT gen_random_uuid(), TG_OP, v_channel_id, v_channel, realtime.change_payload(TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, to_jsonb(nr.*), NULL),
               'system'
          FROM new_rows nr;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO realtime.messages (id, event_name, channel_id, channel_name, payload, sender_type)
        SELECT gen_random_uuid(), TG_OP, v_channel_id, v_channel, realtime.change_payload(TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, nn.n, oo.o),
               'system'
          FROM (SELECT row_number() OVER () AS i, to_jsonb(nr.*) AS n FROM new_rows nr) nn
          JOIN (SELECT row_number() OVER () AS i, to_jsonb(orr.*) AS o FROM old_rows orr) oo USING (i)
         ORDER BY nn.i;
    ELSE
        INSERT INTO realtime.messages (id, event_name, channel_id, channel_name, payload, sender_type)
        SELECT gen_random_uuid(), TG_OP, v_channel_id, v_channel, realtime.change_payload(TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, NULL, to_jsonb(orr.*)),
               'system'
          FROM old_rows orr;
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION realtime.publish_record_changes() FROM PUBLIC;
