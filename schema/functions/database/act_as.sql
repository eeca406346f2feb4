-- Runs the rest of the caller's transaction as a request's caller: its role (NULL: keep the server's,
-- as for admins) and its JWT claims, both transaction-local. Realtime and storage checks start here.
CREATE OR REPLACE FUNCTION system.act_as(p_role text, p_claims text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_role IS NOT NULL THEN
        IF p_role NOT IN ('anon', 'authenticated', 'project_admin') THEN
            RAISE EXCEPTION 'unknown role %', p_role USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('role', p_role, true);
    END IF;
    PERFORM set_config('request.jwt.claims', p_claims, true);
END $$;
REVOKE ALL ON FUNCTION system.act_as(text, text) FROM PUBLIC;
