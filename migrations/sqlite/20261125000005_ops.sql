-- Counting new login QR codes per client IP (the 100,000-a-day creation quota is shared by all).
CREATE INDEX login_scenes_client_ip ON login_scenes (client_ip, created_at);

-- "Log out everywhere": a session remembers the epoch it logged in at; bumping it ends them all.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
