-- API keys (issue 17): `itemsapi keys create|list|revoke`. A token is
-- itemsapi_<id>_<secret>; only the sha256 of the whole token is kept, so a database dump gives
-- no one a working key. The id is public (it is in the access log); the secret is 256 random
-- bits, which is why a plain sha256 suffices here where a password would need a slow hash.
CREATE TABLE api_keys (
    id           text        PRIMARY KEY,
    name         text        NOT NULL,
    scopes       text[]      NOT NULL,
    token_sha256 bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_id_format CHECK (id ~ '^[0-9a-f]{12}$'),
    CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT api_keys_scopes_known
        CHECK (cardinality(scopes) >= 1 AND scopes <@ ARRAY['read', 'write', 'admin']::text[]),
    CONSTRAINT api_keys_token_sha256_length CHECK (octet_length(token_sha256) = 32)
);

COMMENT ON TABLE api_keys IS 'API keys: a hash of each token, its scopes, and whether it is revoked.';
