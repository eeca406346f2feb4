-- A change message's payload: {schema, table, operation, record, old_record} (record is NULL for
-- deletes, old_record for inserts).
CREATE OR REPLACE FUNCTION realtime.change_payload(p_schema text, p_table text, p_operation text, p_record jsonb, p_old_record jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('schema', p_schema, 'table', p_table, 'operation', p_operation,
                              'record', p_record, 'old_record', p_old_record)
$$;
