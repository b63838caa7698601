"""JSON read strictly, for request bodies and token segments alike: UTF-8 only, RFC 8259 only
(orjson: no NaN or Infinity, no trailing data), and no object naming a member twice. RFC 8259
leaves a repeated name's meaning to the parser (the first, the last, or both), so a text that
has one is refused rather than read one way here and another way by whatever checked it.

orjson keeps the last of repeated names without a word. Finding a repeat costs little: outside
strings a colon only ever separates a member's name from its value, so a text without \\u
escapes has as many colons as orjson's own encoding of what it read, unless a member was
dropped. Only when the counts differ, or escapes make them uncertain, is the text parsed again
by the standard library, which shows each object's members as pairs and names the repeat.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class NotStrictJson(ValueError):
    """Says which rule the text broke, as the end of a sentence ("the body ...")."""


def loads(raw: bytes) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise NotStrictJson(f"is not valid UTF-8 (at byte {bad.start})") from None
        raise NotStrictJson(f"is not valid JSON: {exc}") from None
    if b"\\u" in raw or orjson.dumps(value).count(b":") != raw.count(b":"):
        json.loads(raw, object_pairs_hook=_unique_members)
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        repeated = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise NotStrictJson(f"names the member {repeated[:40]!r} twice in one object")
    return members
