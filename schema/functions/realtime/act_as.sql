-- One round trip per socket check, as the caller (system.act_as) with the channel set locally, then
-- the check. A NULL role keeps the server's own (admins always may).
CREATE OR REPLACE FUNCTION realtime.act_as(p_role text, p_claims text, p_channel text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM system.act_as(p_role, p_claims);
    PERFORM set_config('realtime.channel_name', p_channel, true);
END $$;
REVOKE ALL ON FUNCTION realtime.act_as(text, text, text) FROM PUBLIC;
