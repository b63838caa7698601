-- itemsapi: no-transaction
-- Full-text search and the list's filters (docs/api.md, "Filtering and searching"), added to a
-- live table without holding up its writers (docs/design.md, "Search on a live table"):
-- 1. search_vector, a nullable tsvector column kept by a trigger: adding it rewrites nothing
--    (a STORED generated column would rewrite the table under an ACCESS EXCLUSIVE lock);
-- 2. the rows written before it, filled in batches of 1000 by id, each batch committed;
-- 3. the indexes, each built CONCURRENTLY: search, attributes containment, quantity.
-- Each step runs alone (NEXT_STATEMENT_MARKER, db/migrations.py) and can be run again: if one
-- fails, fix the cause (an INVALID index: DROP INDEX CONCURRENTLY it) and run migrate again.
--
-- The text search configuration is the database's, in search_settings: the vectors and the
-- queries must use the same one. `itemsapi migrate` sets it from ITEMSAPI_SEARCH_CONFIG
-- (db/search_config.py), refusing a name PostgreSQL does not know; its default, simple, splits
-- words and lower-cases them without stemming, so text in any language matches word by word.
DO $migration$
DECLARE
    last_id bigint := 0;
    batch_last bigint;
BEGIN
    PERFORM set_config('lock_timeout', '5s', true);
    CREATE TABLE IF NOT EXISTS search_settings (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        -- A name, not a regconfig: pg_upgrade refuses tables with reg* columns other than
        -- regclass and regtype. Read as config::regconfig.
        config   text    NOT NULL DEFAULT 'simple'
    );
    COMMENT ON TABLE search_settings IS
        'The text search configuration of items.search_vector and of searches '
        '(ITEMSAPI_SEARCH_CONFIG, set by itemsapi migrate).';
    INSERT INTO search_settings DEFAULT VALUES ON CONFLICT DO NOTHING;

    ALTER TABLE items ADD COLUMN IF NOT EXISTS search_vector tsvector;

    -- The configuration is a constant here, not read from search_settings on every row (that
    -- lookup cost a quarter of an INSERT's throughput): `itemsapi migrate` writes this function
    -- again with the new one when it changes (db/search_config.py).
    CREATE OR REPLACE FUNCTION itemsapi_search_vector() RETURNS trigger
    LANGUAGE plpgsql AS $function$
    BEGIN
        -- The name weighs more than the description in a relevance sort.
        NEW.search_vector := setweight(to_tsvector('simple', NEW.name), 'A')
                          || setweight(to_tsvector('simple', NEW.description), 'B');
        RETURN NEW;
    END
    $function$;
    COMMENT ON FUNCTION itemsapi_search_vector() IS
        'Keeps items.search_vector, the words of name and description, for every writer.';

    -- Only writes that name the text columns (or the vector itself, as the backfill does) pay.
    CREATE OR REPLACE TRIGGER items_search_vector
        BEFORE INSERT OR UPDATE OF name, description, search_vector ON items
        FOR EACH ROW EXECUTE FUNCTION itemsapi_search_vector();
    COMMIT;

    LOOP
        -- The backfill changes nothing a client sees: it is not announced to the read caches.
        PERFORM set_config('itemsapi.announce', 'after_commit', true);
        WITH batch AS (
            SELECT id FROM items WHERE id > last_id ORDER BY id LIMIT 1000
        ), filled AS (
            UPDATE items SET search_vector = NULL
              FROM batch WHERE items.id = batch.id AND items.search_vector IS NULL
        )
        SELECT max(id) INTO batch_last FROM batch;
        COMMIT;
        EXIT WHEN batch_last IS NULL;
        last_id := batch_last;
    END LOOP;
END
$migration$;
-- itemsapi: next-statement
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_search_idx ON items USING gin (search_vector);
-- itemsapi: next-statement
-- jsonb_path_ops: smaller and faster than the default GIN class, and serves @> (containment),
-- the only operator the attributes filters use.
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_attributes_idx
    ON items USING gin (attributes jsonb_path_ops);
-- itemsapi: next-statement
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_quantity_id_idx ON items (quantity, id);
