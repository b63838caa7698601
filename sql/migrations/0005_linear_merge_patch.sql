-- jsonb_merge_patch (RFC 7396, sql/init.sql) in time linear in the size of its arguments. The
-- baseline applied the patch one key at a time, each jsonb_set copying the whole result so far,
-- so a patch of n keys cost n copies of a growing object: quadratic, and a PATCH of 20,000 keys
-- ran into statement_timeout. Here each object level is one pass: the target's and the patch's
-- members joined by key and aggregated once. Same signature, same answers (tests/integration/
-- test_merge_patch.py checks them against the baseline's definition):
--   a patch that is not an object (or SQL NULL) is the result;
--   a target that is not an object counts as {};
--   a member whose patch value is null is removed; one that is an object is merged recursively
--   (into {} where the target has no object there, which drops the patch's nested nulls);
--   any other patch value (arrays included) replaces; target members the patch omits stay.
-- PL/pgSQL rather than a recursive SQL function: the planner would try to inline the latter
-- into itself.
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
