-- `subscribe`: the channel the caller may see, if any.
CREATE OR REPLACE FUNCTION realtime.subscribe_as(p_role text, p_claims text, p_channel text)
RETURNS TABLE (id uuid, pattern text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM realtime.act_as(p_role, p_claims, p_channel);
    RETURN QUERY SELECT c.id, c.pattern FROM realtime.resolve(p_channel) c;
END $$;
REVOKE ALL ON FUNCTION realtime.subscribe_as(text, text, text) FROM PUBLIC;
