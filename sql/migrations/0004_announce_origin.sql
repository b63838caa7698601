-- The API's announcements of its own writes (0002) name the server that made them, so that
-- its workers, which already know through their shared write ring (src/itemsapi/cache_sync.py),
-- skip them. Payload: <epoch seconds>:<ids, or * for everything>:<origin>. The one-argument
-- function stays for servers of the previous release during a rolling upgrade.
CREATE OR REPLACE FUNCTION itemsapi_announce_items(ids bigint[], origin text) RETURNS void
LANGUAGE sql
AS $$
    SELECT set_config('synchronous_commit', 'off', true);
    SELECT pg_notify('itemsapi_items',
                     extract(epoch FROM clock_timestamp())::text || ':'
                     || COALESCE(array_to_string(ids, ','), '*') || ':' || origin);
$$;
