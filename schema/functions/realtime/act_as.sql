-- One round trip per socket check, as the caller: the role, the claims and the channel set locally
-- (like system.run_as), then the check. A NULL role keeps the server's own (admins always may).
CREATE OR REPLACE FUNCTION realtime.act_as(p_role text, p_claims text, p_channel text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_role IS NOT NULL THEN
        IF p_role NOT IN ('anon', 'authenticated', 'project_admin') THEN
            RAISE EXCEPTION 'unknown role %', p_role USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('role', p_role, true);
    END IF;
    PERFORM set_config('request.jwt.claims', p_claims, true), set_config('realtime.channel_name', p_channel, true);
END $$;
REVOKE ALL ON FUNCTION realtime.act_as(text, text, text) FROM PUBLIC;
