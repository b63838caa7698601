-- The change log (docs/design.md, "The change feed"): every committed change to items, from any
-- writer (this API, psql, pgAdmin, COPY imports, batches), recorded by triggers in the writer's
-- own transaction, so that it commits with the change or not at all. GET /v1/changes and
-- GET /v1/items/{id}/history read it (src/itemsapi/db/changes.py is its only door), and each
-- API worker's read cache follows it (src/itemsapi/cache/follower.py).
--
-- A change's position is (tx, seq):
--   seq  an identity, taken when the trigger runs: after the writer holds the item's row lock,
--        so one item's changes take increasing seqs in the order they happened;
--   tx   the writer's transaction id (pg_current_xact_id(), 64 bits, never wrapping), raised to
--        the tx of the item's previous change when that one is higher: a transaction that took
--        its id early and then waited for another's lock on the item would otherwise sort its
--        newer version of the item before the older one.
-- The feed hands out only changes whose tx is below the xmin of its own snapshot: every
-- transaction that could still commit a change has an id, hence a tx, at or above that xmin,
-- so a reader that goes on from the last position it was given never skips one.
SET LOCAL lock_timeout = '5s';

CREATE TABLE item_changes (
    tx          xid8        NOT NULL,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    item_id     bigint      NOT NULL,
    -- The item's version after the change; for a delete, the version deleted.
    version     bigint      NOT NULL,
    operation   text        NOT NULL CHECK (operation IN ('insert', 'update', 'delete')),
    changed_at  timestamptz NOT NULL DEFAULT statement_timestamp(),
    -- The API's principal (an API key's id, a JWT's subject) for a write made through the API,
    -- otherwise the database role that made it.
    changed_by  text        NOT NULL,
    -- The item after the change, as the API shows it; {"id": ...} alone for a delete.
    item        jsonb       NOT NULL,
    PRIMARY KEY (tx, seq)
);
-- One item's history, newest first, and the trigger's look-up of an item's previous change.
CREATE INDEX item_changes_item_idx ON item_changes (item_id, seq);

-- How far the retention prune has gone: every change at or before this position is deleted, so
-- a cursor before it may have missed some (410). One row.
CREATE TABLE item_changes_pruned (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    tx  xid8    NOT NULL,
    seq bigint  NOT NULL
);
INSERT INTO item_changes_pruned (tx, seq) VALUES ('0', 0);

-- SECURITY DEFINER: every role that may write items has its changes recorded, without being
-- allowed to write the log itself. session_user is still the role that connected.
CREATE FUNCTION itemsapi_record_item_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    own xid8 := pg_current_xact_id();  -- the top-level id, even inside a savepoint
    -- Set for its statement by the API's writes (src/itemsapi/db/changes.py, attributed).
    who text := COALESCE(NULLIF(current_setting('itemsapi.principal', true), ''), session_user);
    gone_ids bigint[];
    gone_versions bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO item_changes (tx, item_id, version, operation, changed_by, item)
        SELECT greatest(own, last.tx), n.id, n.version, 'insert', who,
               jsonb_build_object(
                   'id', n.id, 'name', n.name, 'description', n.description, 'price', n.price,
                   'quantity', n.quantity, 'attributes', n.attributes, 'version', n.version,
                   'created_at', n.created_at, 'updated_at', n.updated_at)
          FROM new_rows AS n
          LEFT JOIN LATERAL (SELECT c.tx FROM item_changes AS c WHERE c.item_id = n.id
                              ORDER BY c.seq DESC LIMIT 1) AS last ON true
         ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only rows whose published columns changed: rewriting search_vector alone (0009's
        -- backfill, a new ITEMSAPI_SEARCH_CONFIG) changes nothing a client sees.
        INSERT INTO item_changes (tx, item_id, version, operation, changed_by, item)
        SELECT greatest(own, last.tx), n.id, n.version, 'update', who,
               jsonb_build_object(
                   'id', n.id, 'name', n.name, 'description', n.description, 'price', n.price,
                   'quantity', n.quantity, 'attributes', n.attributes, 'version', n.version,
                   'created_at', n.created_at, 'updated_at', n.updated_at)
          FROM new_rows AS n
          JOIN old_rows AS o ON o.id = n.id
          LEFT JOIN LATERAL (SELECT c.tx FROM item_changes AS c WHERE c.item_id = n.id
                              ORDER BY c.seq DESC LIMIT 1) AS last ON true
         WHERE (n.name, n.description, n.price, n.quantity, n.attributes, n.version,
                n.created_at, n.updated_at)
               IS DISTINCT FROM (o.name, o.description, o.price, o.quantity, o.attributes,
                                 o.version, o.created_at, o.updated_at)
         ORDER BY n.id;
    ELSE
        -- A DELETE's old rows, or for a TRUNCATE (BEFORE, so they are still there) every row.
        IF TG_OP = 'DELETE' THEN
            SELECT array_agg(id ORDER BY id), array_agg(version ORDER BY id)
              INTO gone_ids, gone_versions FROM old_rows;
        ELSE
            SELECT array_agg(id ORDER BY id), array_agg(version ORDER BY id)
              INTO gone_ids, gone_versions FROM items;
        END IF;
        INSERT INTO item_changes (tx, item_id, version, operation, changed_by, item)
        SELECT greatest(own, last.tx), o.id, o.version, 'delete', who, jsonb_build_object('id', o.id)
          FROM unnest(gone_ids, gone_versions) WITH ORDINALITY AS o(id, version, n)
          LEFT JOIN LATERAL (SELECT c.tx FROM item_changes AS c WHERE c.item_id = o.id
                              ORDER BY c.seq DESC LIMIT 1) AS last ON true
         ORDER BY o.n;
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION itemsapi_record_item_changes() IS
    'Records every change to items in item_changes (sql/migrations/0010_item_changes.sql).';

-- Statement-level, reading the transition tables: one trigger call per statement, whatever it
-- touches (as the notification triggers of 0002). One trigger per event, as PostgreSQL allows a
-- transition table only on a trigger for a single event.
CREATE TRIGGER items_changes_insert AFTER INSERT ON items
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_record_item_changes();
CREATE TRIGGER items_changes_update AFTER UPDATE ON items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_record_item_changes();
CREATE TRIGGER items_changes_delete AFTER DELETE ON items
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_record_item_changes();
CREATE TRIGGER items_changes_truncate BEFORE TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION itemsapi_record_item_changes();

COMMENT ON TABLE item_changes IS
    'Every committed change to items, in feed order (tx, seq); pruned after '
    'ITEMSAPI_CHANGES_RETENTION. See sql/migrations/0010_item_changes.sql.';
