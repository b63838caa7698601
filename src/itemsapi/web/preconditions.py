"""Entity tags in If-Match and If-None-Match, read strictly (RFC 9110 section 13.1): `*` or a
comma-separated list of quoted tags, each maybe weak (W/"..."). Anything else is a malformed
header and answered 400, not guessed at: an unquoted `2-1` is not the tag "2-1"."""

from __future__ import annotations

import re
from dataclasses import dataclass

from itemsapi.errors import BadHeader

# etagc: %x21 / %x23-7E / obs-text (any byte from 0x80, which WSGI hands over as latin-1).
_TAG = r'(W/)?"([\x21\x23-\x7e\x80-\U0010ffff]*)"'
_ELEMENT = re.compile(rf"[ \t]*(?:{_TAG})?[ \t]*(?:,|$)")


@dataclass(frozen=True)
class EntityTags:
    star: bool
    strong_values: tuple[str, ...] = ()  # tags not marked weak, without quotes
    weak_values: tuple[str, ...] = ()  # every tag, weak or not, without quotes


def parse_entity_tags(name: str, value: str | None) -> EntityTags | None:
    """The tags a precondition header lists; None when the request has no such header."""
    if value is None:
        return None
    if value.strip() == "*":
        return EntityTags(star=True)
    strong, every = [], []
    position = 0
    while position < len(value):
        match = _ELEMENT.match(value, position)
        if match is None or match.end() == position:
            raise BadHeader(name, 'must be * or a list of quoted entity tags, like "3-2"')
        if match[2] is not None:
            every.append(match[2])
            if not match[1]:
                strong.append(match[2])
        position = match.end()
    return EntityTags(False, tuple(strong), tuple(every))
