-- Signed callback requests seen recently, by their query signature. A request whose
-- (signature, timestamp, nonce) was seen before is answered from here and its body ignored:
-- in plaintext mode the signature doesn't cover the body, so a captured query must not be
-- reusable with another body within the 5-minute timestamp window.
CREATE TABLE callback_requests (
    signature   TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    reply       TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (signature, timestamp, nonce)
);
CREATE INDEX callback_requests_received ON callback_requests (received_at);
CREATE INDEX callback_deliveries_received ON callback_deliveries (received_at);

-- The shared access token, so a restart doesn't spend one of the day's fetches.
CREATE TABLE wechat_tokens (
    appid      TEXT PRIMARY KEY NOT NULL,
    token      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
