-- Schema for itemsapi. Idempotent: safe to run on an empty database (as the postgres image's
-- /docker-entrypoint-initdb.d does, with psql -v ON_ERROR_STOP=1) and again on a populated one.
-- The constraints mirror the API's validation so that no other path can store a bad row.
--
-- One transaction, all or nothing, and runs started at the same moment (replicas that each run
-- `itemsapi init-db` as they start) take turns on an advisory lock held until it commits:
-- otherwise two CREATE ... IF NOT EXISTS can both find nothing and one fails on the other's row.
--
-- This file is the baseline, version 0 of the schema, and stays as it is: every later change is a
-- numbered file in sql/migrations, applied by `itemsapi migrate` and recorded in schema_migrations.

BEGIN;

DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(7598809992042475625);  -- 'itemsapi' in ASCII, as a bigint
END
$$;

CREATE TABLE IF NOT EXISTS items (
    id          bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text          NOT NULL,
    description text          NOT NULL DEFAULT '',
    price       numeric(10,2),
    quantity    integer       NOT NULL DEFAULT 0,
    attributes  jsonb         NOT NULL DEFAULT '{}',
    version     bigint        NOT NULL DEFAULT 1,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT items_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    -- Unicode White_Space spelled out, as the API's pattern does ([:space:] depends on locale).
    CONSTRAINT items_name_not_blank
        CHECK (name ~ '[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'),
    CONSTRAINT items_description_length CHECK (char_length(description) <= 2000),
    CONSTRAINT items_price_range CHECK (price >= 0),
    CONSTRAINT items_quantity_range CHECK (quantity >= 0),
    CONSTRAINT items_attributes_object CHECK (jsonb_typeof(attributes) = 'object'),
    CONSTRAINT items_version_positive CHECK (version >= 1)
);

COMMENT ON TABLE items IS 'Items served by itemsapi; version counts writes and backs the ETag.';

-- Indexes are created only when missing, looked up first: CREATE INDEX IF NOT EXISTS takes the
-- table's SHARE lock before it looks, so a run on a live database would wait for every open
-- write and, queued for that lock, hold up every write that came after it.
--
-- Keyset pagination walks (sort key, id); one index per sort order the API offers.
-- NULL prices sort as -1 (below every real price) so the key is total and indexable.
-- The `q` filter is a case-insensitive substring match; a trigram index serves it where the
-- pg_trgm extension ships with the server (the official postgres images carry it).
DO $$
BEGIN
    IF to_regclass('items_name_id_idx') IS NULL THEN
        CREATE INDEX items_name_id_idx ON items (name, id);
    END IF;
    IF to_regclass('items_price_id_idx') IS NULL THEN
        CREATE INDEX items_price_id_idx ON items ((COALESCE(price, -1)), id);
    END IF;
    IF to_regclass('items_created_at_id_idx') IS NULL THEN
        CREATE INDEX items_created_at_id_idx ON items (created_at, id);
    END IF;
    IF to_regclass('items_updated_at_id_idx') IS NULL THEN
        CREATE INDEX items_updated_at_id_idx ON items (updated_at, id);
    END IF;
    IF to_regclass('items_name_trgm_idx') IS NULL
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX items_name_trgm_idx ON items USING gin (name gin_trgm_ops);
    END IF;
END
$$;

-- RFC 7396 JSON Merge Patch, applied inside the UPDATE so that a PATCH of `attributes`
-- is one atomic statement: objects merge recursively, null removes a key, anything else replaces.
-- One pass per object level, linear in the patch's size: the same definition as
-- sql/migrations/0005_linear_merge_patch.sql (which explains it), kept here too because this
-- file is run again on live databases and must not bring back the per-key, quadratic one.
CREATE OR REPLACE FUNCTION jsonb_merge_patch(target jsonb, patch jsonb)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
AS $$
BEGIN
    IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        target := '{}'::jsonb;
    END IF;
    RETURN COALESCE(
        (SELECT jsonb_object_agg(
                    key,
                    CASE
                        WHEN p.value IS NULL THEN t.value
                        WHEN jsonb_typeof(p.value) = 'object'
                            THEN jsonb_merge_patch(t.value, p.value)
                        ELSE p.value
                    END)
           FROM jsonb_each(target) AS t
           FULL JOIN jsonb_each(patch) AS p USING (key)
          WHERE p.value IS NULL OR jsonb_typeof(p.value) <> 'null'),
        '{}'::jsonb);
END
$$;

-- The migrations runner's ledger: one row per applied version. checksum is the sha256 of the
-- migration file, so an applied file edited afterwards is caught; NULL for this baseline, which
-- cannot hash itself.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text,
    applied_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE schema_migrations IS 'Schema versions applied; 0 is sql/init.sql.';

INSERT INTO schema_migrations (version, name) VALUES (0, 'baseline')
ON CONFLICT (version) DO NOTHING;

COMMIT;
