"""Import bodies: NDJSON, one item per line exactly as POST /v1/items takes it, read from a
stream of chunks and checked line by line by the same rules (strict_json.loads, then
schemas.validate_write), never held whole. Shared by POST /v1/items/import and `itemsapi
import`.

A bad line does not stop the reading at once: the errors of the first MAX_ERRORS are gathered
so that a client fixes its file in one round, and nothing more is handed on for storing once one
is found; at the end ImportInvalid aborts the import, which stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from itemsapi import strict_json
from itemsapi.errors import FieldError, ImportInvalid, LineError, ValidationFailed
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
        item = ItemWrite.model_validate(strict_json.loads(line))
        return (item.name, item.description, item.price, item.quantity, item.attributes)
    except strict_json.NotStrictJson as exc:
        errors.append(LineError(number, None, f"the line {exc}"))
    except ValidationError:
        try:
            validate_write(strict_json.loads(line))
        except ValidationFailed as exc:
            errors.extend(LineError(number, e.field, e.message) for e in exc.errors)
    if len(errors) >= MAX_ERRORS:
        raise ImportInvalid(errors[:MAX_ERRORS])
    return None
