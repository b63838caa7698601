-- Idempotency-Key (docs/api.md, "Retrying safely"): a write made with a key stores its response
-- here in the same transaction as the write, so that a retry, even one answered by another
-- process after the first died, gets that response again instead of writing twice.
-- Keys are the client's, so they are scoped by who sent them (an API key's id, a JWT's subject;
-- '' with access control off). src/itemsapi/db/idempotency.py is the only door to this table.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal   text        NOT NULL,
    key         text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- sha256 of the request's method, path and body: the same key on another request is 422.
    fingerprint bytea       NOT NULL,
    status      smallint    NOT NULL,
    -- The response headers a client needs again (Location, ETag, Content-Type), as sent.
    headers     jsonb       NOT NULL,
    body        bytea       NOT NULL,
    -- The items the write changed: a replay announces them again to the read caches, since the
    -- process that wrote may have died before it announced.
    item_ids    bigint[]    NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
-- The purge (oldest first, in bounded batches) walks this index.
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at_idx ON idempotency_keys (created_at);
COMMENT ON TABLE idempotency_keys IS
    'Responses of writes made with an Idempotency-Key, replayed to retries until purged '
    '(ITEMSAPI_IDEMPOTENCY_TTL). See src/itemsapi/db/idempotency.py.';
