-- Tables that publish their changes to the realtime channel `table:<name>` (opt-in per table through
-- the tables API, recorded as TableRealtimeChanged). A published table has three more statement
-- triggers; they insert one system message per changed row into realtime.messages, so each change
-- reaches sockets, history and webhooks as a MessagePublished event, like any other message.
--
-- The triggers are named insforge_to_realtime_*: AFTER triggers fire in name order, so the
-- statement's Records* event (insforge_records_*) is queued before its messages.
--
-- Who sees the rows: while the table has row-level security, the hub asks realtime.filter_changes,
-- as each non-admin subscriber, which changes it gets (rows it can see; deletes by primary key only).
-- Only the database publishes there: a client's realtime:publish to a published table's channel is refused.

-- The published table `p_channel` names (`table:<name>`, public schema), or NULL.
CREATE FUNCTION realtime.published_table(p_channel text) RETURNS regclass LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE left(p_channel, 6) = 'table:' AND n.nspname = 'public' AND c.relname = substr(p_channel, 7)
       AND EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'insforge_to_realtime_inserted')
$$;
GRANT EXECUTE ON FUNCTION realtime.published_table(text) TO anon, authenticated, project_admin;

-- A change message's payload: {schema, table, operation, record, old_record} (record is NULL for
-- deletes, old_record for inserts).
CREATE FUNCTION realtime.change_payload(p_schema text, p_table text, p_operation text, p_record jsonb, p_old_record jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('schema', p_schema, 'table', p_table, 'operation', p_operation,
                              'record', p_record, 'old_record', p_old_record)
$$;

-- One message per changed row, its event the operation (INSERT, UPDATE, DELETE). Without an
-- enabled channel for the name (disabled or deleted by an admin) nothing is published.
CREATE FUNCTION realtime.publish_record_changes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
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

-- Turns publishing of `t` on or off (idempotent).
CREATE FUNCTION realtime.set_table_publishing(t regclass, enabled boolean) RETURNS void LANGUAGE plpgsql AS $$
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

-- What a non-admin subscriber of a published table with row-level security gets of a batch of its
-- change messages (`p_payloads`, a JSON array of their payloads, in log order), run as the caller:
-- an INSERT or UPDATE whose row (by primary key) the caller can see now comes as published (payload
-- NULL); a DELETE comes with the old row's primary key only (the row is gone, so nothing can be
-- checked); anything else is left out, and so is everything when the table has no primary key.
-- Returns the ordinals (1-based) of what goes.
CREATE FUNCTION realtime.filter_changes(p_role text, p_claims text, p_table text, p_payloads jsonb)
RETURNS TABLE (ord int, payload text) LANGUAGE plpgsql AS $$
DECLARE
    t regclass := to_regclass(format('public.%I', p_table));
    found_row text;
    keys text[];
BEGIN
    IF t IS NULL THEN RETURN; END IF;
    SELECT string_agg(format('r.%I = (k.v->''record''->>%L)::%s', a.attname, a.attname, format_type(a.atttypid, a.atttypmod)), ' AND '),
           array_agg(a.attname::text)
      INTO found_row, keys
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = t AND i.indisprimary;
    IF found_row IS NULL THEN RETURN; END IF;
    PERFORM realtime.act_as(p_role, p_claims, 'table:' || p_table);
    RETURN QUERY EXECUTE format($q$
        SELECT k.ord::int,
               CASE WHEN k.v->>'operation' = 'DELETE' THEN
                   jsonb_set(k.v, '{old_record}', coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(k.v->'old_record') e
                                                             WHERE e.key = ANY ($2)), '{}'::jsonb))::text
               END
          FROM jsonb_array_elements($1) WITH ORDINALITY AS k(v, ord)
         WHERE k.v->>'operation' = 'DELETE'
            OR (k.v->>'operation' IN ('INSERT', 'UPDATE') AND EXISTS (SELECT 1 FROM %s r WHERE %s))
         ORDER BY k.ord$q$, t, found_row) USING p_payloads, keys;
END $$;
REVOKE ALL ON FUNCTION realtime.filter_changes(text, text, text, jsonb) FROM PUBLIC;

-- Clients (anon, authenticated) may not publish on a published table's channel: what arrives there
-- is the table's changes, written by the database.
CREATE FUNCTION realtime.refuse_client_table_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user IN ('anon', 'authenticated') AND realtime.published_table(NEW.channel_name) IS NOT NULL THEN
        RAISE EXCEPTION 'only the database publishes on %', NEW.channel_name USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
-- The WHEN clause keeps other channels' messages from calling the function at all.
CREATE TRIGGER refuse_client_table_messages BEFORE INSERT ON realtime.messages
    FOR EACH ROW WHEN (left(NEW.channel_name, 6) = 'table:') EXECUTE FUNCTION realtime.refuse_client_table_messages();

-- Records* events took `to_jsonb(n)` of the transition table aliased `n` (and `o`): in a table with a
-- column of that name, the column won and the event carried its values instead of the rows. The
-- rows are now referenced as `alias.*`, which always means the whole row. Otherwise as in 006.
CREATE OR REPLACE FUNCTION system.capture_record_changes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    records jsonb;
    keys jsonb;
    event_type text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(to_jsonb(nr.*)) INTO records FROM new_rows nr;
        event_type := 'RecordsInserted';
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT jsonb_agg(jsonb_build_object('new', nn.n, 'old', oo.o)) INTO records
        FROM (SELECT row_number() OVER () AS i, to_jsonb(nr.*) AS n FROM new_rows nr) nn
        JOIN (SELECT row_number() OVER () AS i, to_jsonb(orr.*) AS o FROM old_rows orr) oo USING (i);
        event_type := 'RecordsUpdated';
    ELSE
        SELECT jsonb_agg(to_jsonb(orr.*)) INTO records FROM old_rows orr;
        event_type := 'RecordsDeleted';
    END IF;
    IF records IS NULL THEN RETURN NULL; END IF;  -- the statement changed nothing
    SELECT coalesce(jsonb_agg(a.attname ORDER BY array_position(i.indkey, a.attnum)), '[]'::jsonb) INTO keys
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
    PERFORM system.queue_event('table-' || TG_TABLE_NAME, event_type,
        jsonb_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'primaryKey', keys,
                           'count', jsonb_array_length(records), 'records', records),
        system.change_metadata());
    RETURN NULL;
END $$;

-- MessagePublished dropped the payload's null fields, at any depth (jsonb_strip_nulls is recursive):
-- {"a": null} reached subscribers as {}. Only the envelope's empty fields are dropped now; the payload
-- goes as written. Otherwise as in 007.
CREATE OR REPLACE FUNCTION realtime.queue_message() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    urls text[];
BEGIN
    IF NEW.channel_id IS NOT NULL THEN
        SELECT c.webhook_urls INTO urls FROM realtime.channels c WHERE c.id = NEW.channel_id;
    END IF;
    INSERT INTO system.pending_events (event_id, stream_id, type, data, metadata)
    VALUES (NEW.id, 'realtime-' || NEW.channel_name, 'MessagePublished',
            jsonb_strip_nulls(jsonb_build_object(
                'messageId', NEW.id, 'channelId', NEW.channel_id, 'channel', NEW.channel_name,
                'event', NEW.event_name, 'senderType', NEW.sender_type,
                'senderId', NEW.sender_id, 'webhookUrls', to_jsonb(coalesce(urls, '{}'::text[])),
                'createdAt', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
            || jsonb_build_object('payload', NEW.payload),
            system.change_metadata());
    RETURN NULL;
END $$;
