-- Runs the rest of the statement as the caller: its role (NULL: keep the server's) and JWT claims.
CREATE OR REPLACE FUNCTION storage.act_as(p_role text, p_claims text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_role IS NOT NULL THEN
        IF p_role NOT IN ('anon', 'authenticated', 'project_admin') THEN
            RAISE EXCEPTION 'unknown role %', p_role USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('role', p_role, true);
    END IF;
    PERFORM set_config('request.jwt.claims', p_claims, true);
END $$;
REVOKE ALL ON FUNCTION storage.act_as(text, text) FROM PUBLIC;
