-- Logging in from a phone: inside WeChat by web authorization (网页授权), elsewhere by an SMS
-- code. Every login says how it happened: `scan`, `wechat_oauth` or `sms`.
ALTER TABLE login_scenes ADD COLUMN method TEXT NOT NULL DEFAULT 'scan'
    CHECK (method IN ('scan', 'wechat_oauth', 'sms'));
ALTER TABLE login_events ADD COLUMN method TEXT NOT NULL DEFAULT 'scan'
    CHECK (method IN ('scan', 'wechat_oauth', 'sms'));
-- The login behind a site's code and tokens, for the id_token's `amr`.
ALTER TABLE oidc_codes ADD COLUMN amr TEXT NOT NULL DEFAULT 'scan';
ALTER TABLE oidc_tokens ADD COLUMN amr TEXT NOT NULL DEFAULT 'scan';

-- A web authorization on its way through WeChat: the `state` sent along, single use, bound to
-- the browser that started it, short-lived. `client_key` counts them per client like QR codes.
CREATE TABLE wechat_oauth_states (
    state      TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    client_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX wechat_oauth_states_client ON wechat_oauth_states (client_key, created_at);

-- The sandbox's web-authorization codes (sandbox mode only): single use, 5 minutes.
CREATE TABLE sandbox_oauth_codes (
    code       TEXT PRIMARY KEY NOT NULL,
    openid     TEXT NOT NULL,
    snapshot   INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0
);
