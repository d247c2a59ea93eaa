-- What was done to the OpenID Connect clients, by whom (NULL: the command line).
CREATE TABLE oidc_client_audit (
    id            INTEGER PRIMARY KEY,
    actor_user_id INTEGER REFERENCES users (id),
    client_id     TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('add', 'edit', 'remove', 'rotate_secret')),
    at            INTEGER NOT NULL,
    detail        TEXT
);
CREATE INDEX oidc_client_audit_client ON oidc_client_audit (client_id, at);
