-- Read models of the core: issued API keys (inline) and per-type event counts (async).

CREATE TABLE system.api_keys (
    kind          text        PRIMARY KEY CHECK (kind IN ('admin', 'anon')),
    key_id        uuid        NOT NULL,
    ciphertext    text        NOT NULL,          -- AES-256-GCM, base64 (nonce|ciphertext|tag)
    fingerprint   text        NOT NULL,          -- SHA-256 hex of the key, for lookups and audits
    previous_fingerprint text,                   -- the rotated-out key, valid until grace_until
    previous_ciphertext  text,
    grace_until   timestamptz,
    issued_at     timestamptz NOT NULL,
    position      bigint      NOT NULL
);

CREATE TABLE system.event_stats (
    category      text   NOT NULL,
    type          text   NOT NULL,
    count         bigint NOT NULL,
    last_position bigint NOT NULL,
    PRIMARY KEY (category, type)
);
