"""Import bodies: NDJSON, one item per line exactly as POST /v1/items takes it, read from a
stream of chunks and checked line by line by the same rules (bodies.parse_json, then
schemas.validate_write), never held whole. Shared by POST /v1/items/import and `itemsapi
import`.

A bad line does not stop the reading at once: the errors of the first MAX_ERRORS are gathered
so that a client fixes its file in one round, and nothing more is handed on for storing once one
is found; at the end ImportInvalid aborts the import, which stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from pydantic import ValidationError

from itemsapi.errors import FieldError, ImportInvalid, LineError, ValidationFailed
from itemsapi.web.bodies import BodyNotJson, parse_json
from itemsapi.web.schemas import ItemWrite, validate_write

NDJSON = "application/x-ndjson"
MAX_ERRORS = 100
Row = tuple[str, str, float | None, int, dict[str, Any]]  # db.transfer's order: WRITABLE_COLUMNS


def rows(chunks: Iterable[bytes]) -> Iterator[Row]:
    """Each line's item, validated, as the values of every writable column; raises
    ImportInvalid at the end (or at the MAX_ERRORS-th error) when a line was bad. Empty lines
    are skipped."""
    errors: list[FieldError] = []
    number = 0
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
        rest = lines.pop()  # an unfinished line, completed by the next chunk
        for line in lines:
            number += 1
            item = _item(line, number, errors)
            if item is not None and not errors:
                yield item
    if rest:
        item = _item(rest, number + 1, errors)
        if item is not None and not errors:
            yield item
    if errors:
        raise ImportInvalid(errors[:MAX_ERRORS])


def _item(line: bytes, number: int, errors: list[FieldError]) -> Row | None:
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        return None
    try:
        # The single POST's rules, the model validated straight: validate_write would also
        # dump it to a dict, a third of the cost; it runs only to name what is wrong.
        item = ItemWrite.model_validate(_parse(line))
        return (item.name, item.description, item.price, item.quantity, item.attributes)
    except BodyNotJson as exc:
        errors.append(LineError(number, None, str(exc).replace("the body", "the line", 1)))
    except ValidationError:
        try:
            validate_write(parse_json(line))
        except ValidationFailed as exc:
            errors.extend(LineError(number, e.field, e.message) for e in exc.errors)
    if len(errors) >= MAX_ERRORS:
        raise ImportInvalid(errors[:MAX_ERRORS])
    return None


def _parse(line: bytes) -> Any:
    """bodies.parse_json's result, without its slow check for repeated member names where the
    line cannot have one: a colon outside strings only ever separates a member from its name,
    so if the line holds exactly as many colons as the parsed value has members, none of them is
    in a string and no name was repeated (orjson keeps one member per repeated name). Anything
    else (a colon in a string, a repeat, bad JSON) goes through parse_json itself."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return parse_json(line)  # raises, saying why
    if line.count(b":") == _members(value):
        return value
    return parse_json(line)


def _members(value: Any) -> int:
    """The members of the objects in `value`, at most: containers in an item's fields other than
    attributes are not counted (validation refuses them), which can only make the count too
    small, and so send the line the slow way, never wrongly the fast one."""
    if type(value) is not dict:
        return 0
    count = len(value)
    attributes = value.get("attributes")
    stack = [attributes] if type(attributes) in (dict, list) else []
    while stack:
        container = stack.pop()
        values = container.values() if type(container) is dict else container
        if type(container) is dict:
            count += len(container)
        for inner in values:
            if type(inner) in (dict, list):
                stack.append(inner)
    return count
