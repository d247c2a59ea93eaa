-- wxlogin schema. Times are Unix seconds (UTC). Phone numbers are E.164 (+8613812345678).

-- Keys this installation made for itself (for example the HMAC key for SMS codes).
CREATE TABLE app_keys (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

-- People who have bound a phone. `openid` is NULL after an administrator unbinds their WeChat.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    phone         TEXT NOT NULL UNIQUE,
    openid        TEXT UNIQUE,
    unionid       TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    bound_at      INTEGER,
    last_login_at INTEGER
);

-- Who follows the Official Account, as the callbacks tell us.
CREATE TABLE followers (
    openid     TEXT PRIMARY KEY NOT NULL,
    following  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One login QR code. The scene string is the secret WeChat echoes back in the scan event; it
-- never appears in a page. `owner` is a random key kept in the session of the browser that
-- created the scene: only that browser may watch or redeem it. "expired" is not stored: it is
-- `expires_at <= now` for any state but 'consumed'.
CREATE TABLE login_scenes (
    scene      TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    ticket     TEXT NOT NULL UNIQUE,
    qr_url     TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'authorized', 'needs_bind', 'rejected', 'consumed')),
    openid     TEXT,
    user_id    INTEGER REFERENCES users (id),
    lang       TEXT NOT NULL DEFAULT 'zh',
    client_ip  TEXT,
    user_agent TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX login_scenes_owner ON login_scenes (owner, created_at);

-- Callback deliveries already handled, so a retry by WeChat (same FromUserName + CreateTime +
-- Event) has no second effect and gets the same answer. `reply` is NULL while being handled.
CREATE TABLE callback_deliveries (
    from_user   TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    event       TEXT NOT NULL,
    reply       TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (from_user, create_time, event)
);

-- Every scan that reached a person: what happened, from where.
CREATE TABLE login_events (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER REFERENCES users (id),
    openid     TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('logged_in', 'needs_bind', 'disabled')),
    client_ip  TEXT,
    user_agent TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX login_events_user ON login_events (user_id, at);
CREATE INDEX login_events_at ON login_events (at);

-- SMS codes, stored only as a keyed hash. Bound to the scene whose binding they are for.
CREATE TABLE sms_codes (
    id         INTEGER PRIMARY KEY,
    scene      TEXT NOT NULL,
    phone      TEXT NOT NULL,
    code_hash  BLOB NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    used       INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sms_codes_phone ON sms_codes (phone, created_at);
CREATE INDEX sms_codes_scene ON sms_codes (scene, created_at);

-- The sandbox's own memory (sandbox mode only): what WeChat's servers and phones would remember.
CREATE TABLE sandbox_tokens (
    token      TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE sandbox_tickets (
    ticket     TEXT PRIMARY KEY NOT NULL,
    scene      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE sandbox_followers (
    openid         TEXT PRIMARY KEY NOT NULL,
    following      INTEGER NOT NULL,
    subscribe_time INTEGER NOT NULL
);
CREATE TABLE sandbox_sms (
    id      INTEGER PRIMARY KEY,
    phone   TEXT NOT NULL,
    code    TEXT NOT NULL,
    sent_at INTEGER NOT NULL
);
