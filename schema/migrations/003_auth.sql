-- Read models of auth, written only by inline projections of the auth events
-- (user-*, session-*, authcode-*, authconfig-*, oauthprovider-* streams).
-- Nothing here holds a password, token or secret in clear: bcrypt hashes, HMACs and AES-GCM boxes only.
-- The claims helpers for policies (auth.jwt(), auth.uid(), ...) are in schema/functions/auth/: the
-- request roles (made in 004_database.sql) reach only those.

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
    id             uuid        PRIMARY KEY,
    email          text        NOT NULL,
    password_hash  text,                         -- bcrypt; NULL for users who only sign in with a provider
    email_verified boolean     NOT NULL,
    provider_type  text        NOT NULL,         -- 'email' or the provider of the first sign-in
    profile        jsonb,                        -- {name, avatar_url, ...}
    metadata       jsonb,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    position       bigint      NOT NULL
);
-- One account per address, whatever its case: concurrent sign-ups race on this index, one wins.
CREATE UNIQUE INDEX users_email_key ON auth.users (lower(email));
CREATE INDEX users_created_at ON auth.users (created_at, id);

CREATE TABLE auth.identities (
    provider         text        NOT NULL,
    provider_user_id text        NOT NULL,
    user_id          uuid        NOT NULL,
    email            text,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (provider, provider_user_id)
);
CREATE INDEX identities_user ON auth.identities (user_id);

-- One row per session family: the refresh token rotates (generation + 1), the row stays.
CREATE TABLE auth.sessions (
    id             uuid        PRIMARY KEY,
    subject        text        NOT NULL,         -- the user id, or 'admin'
    client_type    text        NOT NULL,
    generation     integer     NOT NULL,
    token_hash     text        NOT NULL,         -- SHA-256 hex of the current refresh token
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    refreshed_at   timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX sessions_subject ON auth.sessions (subject) WHERE revoked_at IS NULL;

-- E-mail codes and links (verification, password reset, sign-in OTP, reset tokens).
CREATE TABLE auth.codes (
    id           uuid        PRIMARY KEY,
    email        text        NOT NULL,
    purpose      text        NOT NULL,
    user_id      uuid        NOT NULL,
    code_hash    text,                           -- HMAC of the 6-digit code
    link_hash    text,                           -- HMAC of the link token
    expires_at   timestamptz NOT NULL,
    attempts     integer     NOT NULL,
    max_attempts integer     NOT NULL,
    consumed_at  timestamptz,
    created_at   timestamptz NOT NULL
);
CREATE INDEX codes_by_email ON auth.codes (lower(email), purpose, created_at DESC);
CREATE UNIQUE INDEX codes_by_link ON auth.codes (link_hash) WHERE link_hash IS NOT NULL;

CREATE TABLE auth.config (
    id         integer     PRIMARY KEY CHECK (id = 1),
    settings   jsonb       NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE auth.oauth_configs (
    provider          text        PRIMARY KEY,
    client_id         text        NOT NULL,
    secret_ciphertext text,                      -- AES-256-GCM box of the client secret
    scopes            text[],
    redirect_uri      text,
    updated_at        timestamptz NOT NULL
);
