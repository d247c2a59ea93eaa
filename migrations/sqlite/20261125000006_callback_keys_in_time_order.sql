-- The callback records, keyed in time order. Their keys used to begin with a random value (the
-- request's signature, the sender's openid), so every callback dirtied a random page of each
-- index: under load that was most of what SQLite wrote, and on a slow disk the writing held
-- callbacks up (wxlogin-bench, docs/benchmarks.md). Begun with the timestamp or CreateTime,
-- new rows land on the last page. WITHOUT ROWID stores each table in its key's order, one
-- tree instead of a table and an index. Lookups name every key column, so the order costs them
-- nothing.

CREATE TABLE callback_requests_new (
    timestamp   TEXT NOT NULL,
    signature   TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    reply       TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (timestamp, signature, nonce)
) WITHOUT ROWID;
INSERT INTO callback_requests_new (timestamp, signature, nonce, reply, received_at)
    SELECT timestamp, signature, nonce, reply, received_at FROM callback_requests;
DROP TABLE callback_requests;
ALTER TABLE callback_requests_new RENAME TO callback_requests;
CREATE INDEX callback_requests_received ON callback_requests (received_at);

CREATE TABLE callback_deliveries_new (
    create_time INTEGER NOT NULL,
    from_user   TEXT NOT NULL,
    event       TEXT NOT NULL,
    reply       TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (create_time, from_user, event)
) WITHOUT ROWID;
INSERT INTO callback_deliveries_new (create_time, from_user, event, reply, received_at)
    SELECT create_time, from_user, event, reply, received_at FROM callback_deliveries;
DROP TABLE callback_deliveries;
ALTER TABLE callback_deliveries_new RENAME TO callback_deliveries;
CREATE INDEX callback_deliveries_received ON callback_deliveries (received_at);
