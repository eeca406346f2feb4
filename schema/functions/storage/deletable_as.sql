-- Which of `p_keys` the caller may delete (and can see): the delete is tried as the caller, then undone.
CREATE OR REPLACE FUNCTION storage.deletable_as(p_role text, p_claims text, p_bucket text, p_keys text[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_keys text[];
BEGIN
    BEGIN
        PERFORM system.act_as(p_role, p_claims);
        WITH gone AS (DELETE FROM storage.objects o WHERE o.bucket = p_bucket AND o.key = ANY(p_keys) RETURNING o.key)
        SELECT coalesce(array_agg(gone.key), '{}') INTO v_keys FROM gone;
        RAISE EXCEPTION 'storage delete probe' USING ERRCODE = 'S0001';
    EXCEPTION
        -- Variables keep their values when a block's changes are rolled back.
        WHEN SQLSTATE 'S0001' THEN RETURN v_keys;
    END;
END $$;
REVOKE ALL ON FUNCTION storage.deletable_as(text, text, text, text[]) FROM PUBLIC;
