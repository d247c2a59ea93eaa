-- The admin area: indexes for the users table's keyset pagination (newest first by bound-at or
-- last login, ties broken by id), a substring search index, the dashboard's counts, the login
-- history of one WeChat, and the audit log.

CREATE INDEX users_bound_at ON users (bound_at, id);
CREATE INDEX users_last_login_at ON users (last_login_at, id);
-- Administrators and disabled users are few: with a filter on them, walking the whole index in
-- order to find 50 would read most of the table. These small partial indexes hold just them.
CREATE INDEX users_admin_bound_at ON users (bound_at, id) WHERE is_admin = 1;
CREATE INDEX users_admin_last_login_at ON users (last_login_at, id) WHERE is_admin = 1;
CREATE INDEX users_disabled_bound_at ON users (bound_at, id) WHERE disabled = 1;
CREATE INDEX users_disabled_last_login_at ON users (last_login_at, id) WHERE disabled = 1;

-- Search by any part of the phone, openid or unionid. `LIKE '%5678%'` can't use an index and
-- reads every row; a trigram index finds substrings of 3 or more characters directly. It
-- indexes the users table's own columns (external content) and follows it through triggers.
CREATE VIRTUAL TABLE users_search USING fts5 (
    phone, openid, unionid,
    content = 'users', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_search (rowid, phone, openid, unionid)
    VALUES (new.id, new.phone, new.openid, new.unionid);
END;
CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_search (users_search, rowid, phone, openid, unionid)
    VALUES ('delete', old.id, old.phone, old.openid, old.unionid);
END;
CREATE TRIGGER users_search_update AFTER UPDATE OF phone, openid, unionid ON users BEGIN
    INSERT INTO users_search (users_search, rowid, phone, openid, unionid)
    VALUES ('delete', old.id, old.phone, old.openid, old.unionid);
    INSERT INTO users_search (rowid, phone, openid, unionid)
    VALUES (new.id, new.phone, new.openid, new.unionid);
END;
INSERT INTO users_search (users_search) VALUES ('rebuild');

-- The dashboard: logins per day, and how many users follow the account.
CREATE INDEX login_events_outcome_at ON login_events (outcome, at);
CREATE INDEX followers_following ON followers (following, openid);

-- A user's login history includes the scans their WeChat made before it was bound
-- (outcome 'needs_bind', user_id NULL): those are found by openid.
CREATE INDEX login_events_openid ON login_events (openid, at);

-- Who did what to whom, and when. `actor_user_id` is NULL for the command line
-- (`wxlogin admin grant|revoke`). Rows are only ever added.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY,
    actor_user_id  INTEGER REFERENCES users (id),
    target_user_id INTEGER REFERENCES users (id),
    action         TEXT NOT NULL
                   CHECK (action IN ('disable', 'enable', 'unbind', 'grant_admin', 'revoke_admin')),
    at             INTEGER NOT NULL,
    detail         TEXT
);
CREATE INDEX audit_log_target ON audit_log (target_user_id, at);
