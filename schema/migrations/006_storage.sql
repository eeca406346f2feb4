-- Storage: buckets and object metadata, both inline read models of the `bucket-<name>` streams
-- (BucketCreated/Updated/Deleted, ObjectUploaded/Deleted). The bytes live with a provider (local
-- folder or S3) under `<bucket>/<key>/<version>`, where `version` is a fresh id per upload: a new
-- upload never touches the bytes the current metadata points at, and bytes no row points at are
-- orphans that the sweeper removes. The checks made as the caller are in schema/functions/storage/.
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
-- The policies for anon and authenticated call auth.uid(), so they are made with it, in
-- schema/functions/auth/uid.sql.
CREATE POLICY objects_project_admin ON storage.objects TO project_admin USING (true) WITH CHECK (true);

-- Settings changed through the API (StorageConfigured); an absent row means the server's defaults.
CREATE TABLE storage.settings (
    id            int PRIMARY KEY CHECK (id = 1),
    max_file_size bigint NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- insforge_sql (the unrestricted raw-SQL route) reads the schema.
GRANT USAGE ON SCHEMA storage TO insforge_sql;
GRANT SELECT ON ALL TABLES IN SCHEMA storage TO insforge_sql;
ALTER DEFAULT PRIVILEGES IN SCHEMA storage GRANT SELECT ON TABLES TO insforge_sql;
