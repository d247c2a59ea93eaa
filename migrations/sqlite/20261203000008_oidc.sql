-- The OpenID Connect provider: registered sites, signing keys, authorization codes, tokens.

-- A site that logs its users in through wxlogin.
CREATE TABLE oidc_clients (
    id TEXT PRIMARY KEY,                     -- client_id (random)
    name TEXT NOT NULL,                      -- shown on the login page
    secret_hash BLOB,                        -- SHA-256 of the secret; NULL: a public client (PKCE)
    redirect_uris TEXT NOT NULL,             -- JSON array, matched exactly
    post_logout_redirect_uris TEXT NOT NULL, -- JSON array
    created_at INTEGER NOT NULL
);

-- Keys that sign id_tokens. The current one has no retired_at; a retired one stays in the
-- JWKS until every token it signed has expired.
CREATE TABLE oidc_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_der BLOB NOT NULL,               -- PKCS#1 DER; never leaves the database
    public_n TEXT NOT NULL,                  -- base64url modulus
    public_e TEXT NOT NULL,                  -- base64url exponent
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);

-- Authorization codes: single use, valid 60 s. Only a hash is kept.
CREATE TABLE oidc_codes (
    code_hash BLOB PRIMARY KEY,
    grant_id TEXT NOT NULL,                  -- the tokens this code is exchanged for
    client_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,                     -- PKCE S256
    auth_time INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

-- Access and refresh tokens (opaque; only a hash is kept). Tokens from one code share a grant:
-- a replayed code or refresh token revokes the whole grant.
CREATE TABLE oidc_tokens (
    token_hash BLOB PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    scope TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,                         -- a refresh token, once exchanged
    revoked_at INTEGER
);
CREATE INDEX oidc_tokens_grant ON oidc_tokens (grant_id);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens (expires_at);
CREATE INDEX oidc_codes_expiry ON oidc_codes (expires_at);
