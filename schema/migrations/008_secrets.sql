-- Project secrets (/api/secrets): the inline read model of the secret-<KEY> streams, values sealed
-- (AES-256-GCM under a key id). When each was last read is kept apart: reads are not events, and the
-- read model must stay what the log replays to.
CREATE TABLE system.secrets (
    id          uuid        PRIMARY KEY,
    key         text        NOT NULL UNIQUE CHECK (key ~ '^[A-Z0-9_]+$'),
    ciphertext  text        NOT NULL,
    is_active   boolean     NOT NULL DEFAULT true,
    is_reserved boolean     NOT NULL DEFAULT false,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
REVOKE ALL ON system.secrets FROM PUBLIC;

CREATE TABLE system.secret_reads (
    key          text        PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);
REVOKE ALL ON system.secret_reads FROM PUBLIC;
