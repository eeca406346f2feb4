-- Functions that run as their owner look names up in pg_catalog and then pg_temp only. With
-- `public` on their path (as 004-013 had it), anyone who may create objects there (project_admin)
-- could put a function or operator in the way of an unqualified name; with pg_temp left implicit it
-- would be searched first for tables. Every other name in them is schema-qualified.
ALTER FUNCTION system.capture_record_changes() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION realtime.queue_message() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION realtime.publish(text, text, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION realtime.publish_record_changes() SET search_path = pg_catalog, pg_temp;
