-- Every change to who may do what is announced on channel itemsapi_keys, so that each API
-- worker's cache of key records (src/itemsapi/auth/keys.py) drops them, whoever made the change:
-- `itemsapi keys` on any machine, psql, pgAdmin. A worker caches records only while its listener
-- is listening, so a revocation holds everywhere once this notification is delivered
-- (milliseconds), and at the next request wherever the listener is down.
--
-- The payload is always '*' (drop every record): keys change rarely, and a worker re-reads only
-- the keys it is asked for. last_used_at, written by the API itself at most once a minute per key
-- and process, is left out: it changes nothing about access.

CREATE OR REPLACE FUNCTION itemsapi_notify_keys() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('itemsapi_keys', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_notify
    AFTER INSERT OR DELETE OR UPDATE OF id, name, scopes, token_sha256, revoked_at ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_notify_keys();
CREATE TRIGGER api_keys_notify_truncate AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_notify_keys();
