-- A page of a bucket's objects as the caller sees them, with the total. `p_prefix` matches the key's
-- start, `p_search` any part of it (both literal: LIKE wildcards in them are escaped here).
CREATE OR REPLACE FUNCTION storage.list_as(p_role text, p_claims text, p_bucket text, p_prefix text, p_search text,
                                p_limit int, p_offset int)
RETURNS TABLE (key text, size bigint, mime_type text, etag text, uploaded_by uuid, uploaded_at timestamptz, total bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_prefix text := replace(replace(replace(coalesce(p_prefix, ''), '\', '\\'), '%', '\%'), '_', '\_');
    v_search text := replace(replace(replace(coalesce(p_search, ''), '\', '\\'), '%', '\%'), '_', '\_');
BEGIN
    PERFORM system.act_as(p_role, p_claims);
    RETURN QUERY SELECT o.key, o.size, o.mime_type, o.etag, o.uploaded_by, o.uploaded_at, count(*) OVER ()
                   FROM storage.objects o
                  WHERE o.bucket = p_bucket AND o.key LIKE v_prefix || '%'
                    AND (p_search IS NULL OR o.key ILIKE '%' || v_search || '%')
                  ORDER BY o.key LIMIT p_limit OFFSET p_offset;
END $$;
REVOKE ALL ON FUNCTION storage.list_as(text, text, text, text, text, int, int) FROM PUBLIC;
