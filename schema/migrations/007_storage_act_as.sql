-- storage.act_as was a copy of what realtime did to run as a caller; both now use system.act_as
-- (schema/functions/database/act_as.sql). Dropped here, before the function files that called it
-- are applied again with their new bodies.
DROP FUNCTION IF EXISTS storage.act_as(text, text);
