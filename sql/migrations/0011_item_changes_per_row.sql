-- The change log of 0010, cheaper per write, with the same positions and guarantees
-- (docs/design.md, "The change feed"; docs/performance.md, "Change log"):
-- 1. the triggers fire per row: one single-row write no longer fills transition tables;
-- 2. the item after the change is kept as its columns, not built into a jsonb value on every
--    write: db/changes.py builds the API's JSON when a change is read (`item` stays for the
--    changes recorded before this migration);
-- 3. the item's latest position (an upper bound of it) is kept on the item itself, in
--    items.change_tx, instead of looked up in item_changes for every update and delete.
--
-- Why change_tx is enough: a BEFORE UPDATE row trigger runs with the row locked, and OLD is its
-- latest committed version, so OLD.change_tx is at least the tx of the item's latest change
-- (each writer raises it, and nothing else may set it). An insert has no item row before it:
-- only an id given with OVERRIDING SYSTEM VALUE can have a history, so an insert still looks up
-- the log, after its unique check has waited out any uncommitted delete of that id. A NULL
-- change_tx (an item not updated since its insert, or older than this migration) is looked up.
SET LOCAL lock_timeout = '5s';

ALTER TABLE items ADD COLUMN change_tx xid8;
COMMENT ON COLUMN items.change_tx IS
    'The tx of the item''s latest change in item_changes, or more; kept by the change log''s '
    'triggers (sql/migrations/0011), never written by a client. NULL: looked up.';

ALTER TABLE item_changes
    ALTER COLUMN item DROP NOT NULL,
    ADD COLUMN name text,
    ADD COLUMN description text,
    ADD COLUMN price numeric(10, 2),
    ADD COLUMN quantity integer,
    ADD COLUMN attributes jsonb,
    ADD COLUMN created_at timestamptz,
    ADD COLUMN updated_at timestamptz;
COMMENT ON COLUMN item_changes.item IS
    'The item after the change, for changes recorded before sql/migrations/0011; later ones '
    'keep its columns (name ... updated_at), NULL for a delete.';

-- SECURITY DEFINER, as 0010's: the writer need not be allowed to read the log.
CREATE FUNCTION itemsapi_raise_change_tx() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- The log is read only for an item without change_tx. (An id, GENERATED ALWAYS, cannot
    -- change.)
    NEW.change_tx := greatest(pg_current_xact_id(), COALESCE(OLD.change_tx, (
        SELECT c.tx FROM item_changes AS c WHERE c.item_id = OLD.id ORDER BY c.seq DESC LIMIT 1
    )));
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION itemsapi_record_item_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    own xid8 := pg_current_xact_id();  -- the top-level id, even inside a savepoint
    -- Set for its statement by the API's writes (src/itemsapi/db/changes.py, attributed).
    who text := COALESCE(NULLIF(current_setting('itemsapi.principal', true), ''), session_user);
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.change_tx IS NOT NULL THEN
            RAISE EXCEPTION 'items.change_tx is kept by the change log, not written';
        END IF;
        INSERT INTO item_changes (tx, item_id, version, operation, changed_by, name, description,
                                  price, quantity, attributes, created_at, updated_at)
        VALUES (greatest(own, (SELECT c.tx FROM item_changes AS c WHERE c.item_id = NEW.id
                                ORDER BY c.seq DESC LIMIT 1)),
                NEW.id, NEW.version, 'insert', who, NEW.name, NEW.description, NEW.price,
                NEW.quantity, NEW.attributes, NEW.created_at, NEW.updated_at);
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only when a published column changed: rewriting search_vector alone (0009's
        -- backfill, a new ITEMSAPI_SEARCH_CONFIG) changes nothing a client sees.
        IF (NEW.name, NEW.description, NEW.price, NEW.quantity, NEW.attributes, NEW.version,
            NEW.created_at, NEW.updated_at)
           IS DISTINCT FROM (OLD.name, OLD.description, OLD.price, OLD.quantity, OLD.attributes,
                             OLD.version, OLD.created_at, OLD.updated_at) THEN
            INSERT INTO item_changes (tx, item_id, version, operation, changed_by, name,
                                      description, price, quantity, attributes, created_at,
                                      updated_at)
            VALUES (NEW.change_tx, NEW.id, NEW.version, 'update', who, NEW.name,
                    NEW.description, NEW.price, NEW.quantity, NEW.attributes, NEW.created_at,
                    NEW.updated_at);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO item_changes (tx, item_id, version, operation, changed_by)
        VALUES (greatest(own, COALESCE(OLD.change_tx, (
                    SELECT c.tx FROM item_changes AS c WHERE c.item_id = OLD.id
                     ORDER BY c.seq DESC LIMIT 1))),
                OLD.id, OLD.version, 'delete', who);
    ELSE  -- TRUNCATE (BEFORE, statement-level, so the rows are still there): every row
        INSERT INTO item_changes (tx, item_id, version, operation, changed_by)
        SELECT greatest(own, COALESCE(i.change_tx, (
                   SELECT c.tx FROM item_changes AS c WHERE c.item_id = i.id
                    ORDER BY c.seq DESC LIMIT 1))),
               i.id, i.version, 'delete', who
          FROM items AS i ORDER BY i.id;
    END IF;
    RETURN NULL;
END
$$;

-- The same names as 0010's, now per row (bench/changes.py switches them, and items_change_tx).
DROP TRIGGER items_changes_insert ON items;
DROP TRIGGER items_changes_update ON items;
DROP TRIGGER items_changes_delete ON items;
CREATE TRIGGER items_change_tx BEFORE UPDATE ON items
    FOR EACH ROW EXECUTE FUNCTION itemsapi_raise_change_tx();
CREATE TRIGGER items_changes_insert AFTER INSERT ON items
    FOR EACH ROW EXECUTE FUNCTION itemsapi_record_item_changes();
CREATE TRIGGER items_changes_update AFTER UPDATE ON items
    FOR EACH ROW EXECUTE FUNCTION itemsapi_record_item_changes();
CREATE TRIGGER items_changes_delete AFTER DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION itemsapi_record_item_changes();
-- items_changes_truncate (BEFORE TRUNCATE, per statement) stays as 0010 made it.
