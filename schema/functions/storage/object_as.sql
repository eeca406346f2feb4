-- One object as the caller sees it (no row: absent or not readable).
CREATE OR REPLACE FUNCTION storage.object_as(p_role text, p_claims text, p_bucket text, p_key text)
RETURNS TABLE (version uuid, size bigint, mime_type text, etag text, uploaded_by uuid, uploaded_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM system.act_as(p_role, p_claims);
    RETURN QUERY SELECT o.version, o.size, o.mime_type, o.etag, o.uploaded_by, o.uploaded_at
                   FROM storage.objects o WHERE o.bucket = p_bucket AND o.key = p_key;
END $$;
REVOKE ALL ON FUNCTION storage.object_as(text, text, text, text) FROM PUBLIC;
