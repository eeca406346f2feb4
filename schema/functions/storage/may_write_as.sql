-- Whether the caller may put `p_key` (a new object, or over the one there) as `p_uploader`: the
-- write is tried as the caller, so the INSERT and UPDATE policies decide, then always undone. The
-- real write is the ObjectUploaded event's.
CREATE OR REPLACE FUNCTION storage.may_write_as(p_role text, p_claims text, p_bucket text, p_key text, p_uploader uuid)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM system.act_as(p_role, p_claims);
        INSERT INTO storage.objects AS o (bucket, key, version, size, mime_type, etag, uploaded_by, uploaded_at)
        VALUES (p_bucket, p_key, gen_random_uuid(), 0, '', '', p_uploader, now())
        ON CONFLICT (bucket, key) DO UPDATE SET uploaded_by = excluded.uploaded_by;
        RAISE EXCEPTION 'storage write probe' USING ERRCODE = 'S0001';
    EXCEPTION
        WHEN insufficient_privilege THEN RETURN false;
        WHEN SQLSTATE 'S0001' THEN RETURN true;
    END;
END $$;
REVOKE ALL ON FUNCTION storage.may_write_as(text, text, text, text, uuid) FROM PUBLIC;
