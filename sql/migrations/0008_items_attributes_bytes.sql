-- The length of each item's attributes as JSON text, kept with the row, so that a list page can
-- stop at a byte budget (src/itemsapi/db/sized.py) without turning every candidate row's
-- attributes into text on every read: measured on 1 MiB attributes, that took 2-3 s a page.
-- Expand only: a nullable column without a default (no table rewrite); rows written before
-- this are NULL and are measured when read (sized.py falls back) until a backfill fills them
-- (docs/operations.md, "Memory").
SET LOCAL lock_timeout = '5s';

ALTER TABLE items ADD COLUMN attributes_bytes integer;

CREATE FUNCTION itemsapi_attributes_bytes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.attributes_bytes := octet_length(NEW.attributes::text);
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION itemsapi_attributes_bytes() IS
    'Keeps items.attributes_bytes, the length of attributes as JSON text, for every writer.';

-- Only writes that name attributes (or the column itself) pay for measuring it.
CREATE TRIGGER items_attributes_bytes
    BEFORE INSERT OR UPDATE OF attributes, attributes_bytes ON items
    FOR EACH ROW EXECUTE FUNCTION itemsapi_attributes_bytes();
