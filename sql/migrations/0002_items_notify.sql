-- Every change to items is announced on channel itemsapi_items, so that each API worker's read
-- cache (src/itemsapi/cache.py) drops what changed, whoever changed it: this API, another replica,
-- psql, pgAdmin. NOTIFY is transactional: listeners hear of a change when it commits, and never of
-- one rolled back. The payload (at most 64 ids, so far below the 8000-byte limit):
--   <epoch seconds when the statement ran>:<id>,<id>,...   the rows the statement changed
--   <epoch seconds when the statement ran>:*               more than 64 rows, or TRUNCATE: drop all
-- The timestamp lets listeners measure how late they hear of a change (metric
-- itemsapi_cache_notification_lag_seconds).
--
-- The API's own writes are announced by the API instead (itemsapi_announce_items, below): its
-- sessions say so with the setting itemsapi.announce = after_commit (db.py), and the triggers
-- leave their writes alone. PostgreSQL serializes the commits of transactions that NOTIFY, holding
-- a lock across the commit's WAL flush, so a NOTIFY inside each write transaction caps the
-- database's write rate at one commit per flush; announced in a transaction of its own that does
-- not wait for the flush, the lock is held for microseconds (docs/operations.md, "Read cache").
--
-- Statement-level triggers reading the statement's transition table, not row-level ones: one
-- notification per statement whatever it touches (an UPDATE of 10,000 rows sends one flush, not
-- 10,000 notifications for every listener to read), and a one-row write pays for one trigger call.
-- PostgreSQL allows a transition table only on a trigger for a single event, hence three triggers
-- (and a fourth for TRUNCATE, which has no rows to list) sharing one function.

CREATE OR REPLACE FUNCTION itemsapi_notify_items() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    changed bigint[];
    listed text;
BEGIN
    IF current_setting('itemsapi.announce', true) = 'after_commit' THEN
        RETURN NULL;  -- an API session: it announces its write itself once committed
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        listed := '*';
    ELSE
        IF TG_OP = 'DELETE' THEN
            SELECT array_agg(id) INTO changed FROM (SELECT id FROM old_rows LIMIT 65) AS changed_rows;
        ELSE
            SELECT array_agg(id) INTO changed FROM (SELECT id FROM new_rows LIMIT 65) AS changed_rows;
        END IF;
        IF changed IS NULL THEN
            RETURN NULL;  -- the statement changed no row (a write whose If-Match failed)
        END IF;
        listed := CASE WHEN cardinality(changed) > 64 THEN '*' ELSE array_to_string(changed, ',') END;
    END IF;
    PERFORM pg_notify('itemsapi_items', extract(epoch FROM clock_timestamp())::text || ':' || listed);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS items_notify_insert ON items;
DROP TRIGGER IF EXISTS items_notify_update ON items;
DROP TRIGGER IF EXISTS items_notify_delete ON items;
DROP TRIGGER IF EXISTS items_notify_truncate ON items;

CREATE TRIGGER items_notify_insert AFTER INSERT ON items
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_notify_items();
-- An UPDATE cannot change an id (GENERATED ALWAYS), so the new rows name every row it touched.
CREATE TRIGGER items_notify_update AFTER UPDATE ON items
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_notify_items();
CREATE TRIGGER items_notify_delete AFTER DELETE ON items
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_notify_items();
CREATE TRIGGER items_notify_truncate AFTER TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_notify_items();

-- What the API runs, on its own connection in autocommit, right after a write has committed:
-- the same payload as the triggers', in a transaction that commits without waiting for its WAL
-- to reach disk. Nothing durable depends on it: a notification lost to a crash of PostgreSQL
-- is never needed, as every listener's connection breaks too and its cache is emptied.
CREATE OR REPLACE FUNCTION itemsapi_announce_items(ids bigint[]) RETURNS void
LANGUAGE sql
AS $$
    SELECT set_config('synchronous_commit', 'off', true);
    SELECT pg_notify('itemsapi_items',
                     extract(epoch FROM clock_timestamp())::text || ':' || array_to_string(ids, ','));
$$;
