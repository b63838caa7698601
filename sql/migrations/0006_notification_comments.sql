-- What the items triggers (0002) and the API's announcements (0004) send on channel
-- itemsapi_items is defined, and parsed, in one place: src/itemsapi/cache/notification.py.
-- Said on the functions themselves, where psql's \df+ and pgAdmin show it; the comments in 0002
-- and 0004 name modules that have moved since (applied files are never edited).
COMMENT ON FUNCTION itemsapi_notify_items() IS
    'Announces the rows a statement changed on channel itemsapi_items. Payload: '
    '<epoch>:<ids or *>, defined in src/itemsapi/cache/notification.py.';
COMMENT ON FUNCTION itemsapi_announce_items(bigint[]) IS
    'The previous release''s announcement of its own writes (kept for rolling upgrades). '
    'Payload: <epoch>:<ids>, defined in src/itemsapi/cache/notification.py.';
COMMENT ON FUNCTION itemsapi_announce_items(bigint[], text) IS
    'An API server''s announcement of its own committed writes. Payload: '
    '<epoch>:<ids or *>:<origin>, defined in src/itemsapi/cache/notification.py.';
