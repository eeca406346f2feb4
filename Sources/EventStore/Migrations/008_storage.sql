-- Storage: buckets and object metadata, both inline read models of the `bucket-<name>` streams
-- (BucketCreated/Updated/Deleted, ObjectUploaded/Deleted). The bytes live with a provider (local
-- folder or S3) under `<bucket>/<key>/<version>`, where `version` is a fresh id per upload: a new
-- upload never touches the bytes the current metadata points at, and bytes no row points at are
-- orphans that the sweeper removes.
CREATE SCHEMA storage;
GRANT USAGE ON SCHEMA storage TO anon, authenticated, project_admin;

CREATE TABLE storage.buckets (
    name       text PRIMARY KEY,
    public     boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- Policies on objects look up whether a bucket is public, as the caller.
GRANT SELECT ON storage.buckets TO anon, authenticated, project_admin;

CREATE TABLE storage.objects (
    bucket      text NOT NULL,
    key         text NOT NULL,
    version     uuid NOT NULL,
    size        bigint NOT NULL,
    mime_type   text NOT NULL,
    etag        text NOT NULL,
    uploaded_by uuid,
    uploaded_at timestamptz NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX objects_key_prefix ON storage.objects (bucket, key text_pattern_ops);
CREATE INDEX objects_uploaded_by ON storage.objects (uploaded_by);

-- Who may do what with an object is row-level security, evaluated as the caller (admins keep the
-- server's role and bypass it). The defaults: anyone reads objects of public buckets; a signed-in
-- user reads, overwrites and deletes what they uploaded. Projects may replace these policies.
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON storage.objects TO anon, authenticated, project_admin;
CREATE POLICY objects_read ON storage.objects FOR SELECT TO anon, authenticated
    USING (uploaded_by = auth.uid() OR EXISTS (SELECT 1 FROM storage.buckets b WHERE b.name = bucket AND b.public));
CREATE POLICY objects_insert ON storage.objects FOR INSERT TO authenticated
    WITH CHECK (uploaded_by = auth.uid());
CREATE POLICY objects_update ON storage.objects FOR UPDATE TO authenticated
    USING (uploaded_by = auth.uid()) WITH CHECK (uploaded_by = auth.uid());
CREATE POLICY objects_delete ON storage.objects FOR DELETE TO authenticated
    USING (uploaded_by = auth.uid());
CREATE POLICY objects_project_admin ON storage.objects TO project_admin USING (true) WITH CHECK (true);

-- Settings changed through the API (StorageConfigured); an absent row means the server's defaults.
CREATE TABLE storage.settings (
    id            int PRIMARY KEY CHECK (id = 1),
    max_file_size bigint NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Runs the rest of the statement as the caller: its role (NULL: keep the server's) and JWT claims.
CREATE FUNCTION storage.act_as(p_role text, p_claims text) RETURNS void LANGUAGE plpgsql AS $$
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

-- One object as the caller sees it (no row: absent or not readable).
CREATE FUNCTION storage.object_as(p_role text, p_claims text, p_bucket text, p_key text)
RETURNS TABLE (version uuid, size bigint, mime_type text, etag text, uploaded_by uuid, uploaded_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM storage.act_as(p_role, p_claims);
    RETURN QUERY SELECT o.version, o.size, o.mime_type, o.etag, o.uploaded_by, o.uploaded_at
                   FROM storage.objects o WHERE o.bucket = p_bucket AND o.key = p_key;
END $$;
REVOKE ALL ON FUNCTION storage.object_as(text, text, text, text) FROM PUBLIC;

-- A page of a bucket's objects as the caller sees them, with the total. `p_prefix` matches the key's
-- start, `p_search` any part of it (both literal: LIKE wildcards in them are escaped here).
CREATE FUNCTION storage.list_as(p_role text, p_claims text, p_bucket text, p_prefix text, p_search text,
                                p_limit int, p_offset int)
RETURNS TABLE (key text, size bigint, mime_type text, etag text, uploaded_by uuid, uploaded_at timestamptz, total bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_prefix text := replace(replace(replace(coalesce(p_prefix, ''), '\', '\\'), '%', '\%'), '_', '\_');
    v_search text := replace(replace(replace(coalesce(p_search, ''), '\', '\\'), '%', '\%'), '_', '\_');
BEGIN
    PERFORM storage.act_as(p_role, p_claims);
    RETURN QUERY SELECT o.key, o.size, o.mime_type, o.etag, o.uploaded_by, o.uploaded_at, count(*) OVER ()
                   FROM storage.objects o
                  WHERE o.bucket = p_bucket AND o.key LIKE v_prefix || '%'
                    AND (p_search IS NULL OR o.key ILIKE '%' || v_search || '%')
                  ORDER BY o.key LIMIT p_limit OFFSET p_offset;
END $$;
REVOKE ALL ON FUNCTION storage.list_as(text, text, text, text, text, int, int) FROM PUBLIC;

-- Whether the caller may put `p_key` (a new object, or over the one there) as `p_uploader`: the
-- write is tried as the caller, so the INSERT and UPDATE policies decide, then always undone. The
-- real write is the ObjectUploaded event's.
CREATE FUNCTION storage.may_write_as(p_role text, p_claims text, p_bucket text, p_key text, p_uploader uuid)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM storage.act_as(p_role, p_claims);
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

-- Which of `p_keys` the caller may delete (and can see): the delete is tried as the caller, then undone.
CREATE FUNCTION storage.deletable_as(p_role text, p_claims text, p_bucket text, p_keys text[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_keys text[];
BEGIN
    BEGIN
        PERFORM storage.act_as(p_role, p_claims);
        WITH gone AS (DELETE FROM storage.objects o WHERE o.bucket = p_bucket AND o.key = ANY(p_keys) RETURNING o.key)
        SELECT coalesce(array_agg(gone.key), '{}') INTO v_keys FROM gone;
        RAISE EXCEPTION 'storage delete probe' USING ERRCODE = 'S0001';
    EXCEPTION
        -- Variables keep their values when a block's changes are rolled back.
        WHEN SQLSTATE 'S0001' THEN RETURN v_keys;
    END;
END $$;
REVOKE ALL ON FUNCTION storage.deletable_as(text, text, text, text[]) FROM PUBLIC;
