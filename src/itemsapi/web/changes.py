"""GET /v1/changes, the change feed, and GET /v1/items/{id}/history (docs/api.md, "Following
changes"). The feed's order and its guarantees are db/changes.py's; here the parameters (every
bad one reported at once), the long-poll, and the bodies.

A long-poll (`wait`) that finds nothing waits on its worker's ChangeFollower, which reads the log
once per wake-up for every waiter, without its run slot (admission.py); when every waiting
place is taken it answers at once, as an empty page does.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request

from itemsapi.db.changes import ChangeLog, Position
from itemsapi.db.pool import Row
from itemsapi.errors import BadParameter, FieldError, ItemNotFound
from itemsapi.web.context import of
from itemsapi.web.deps import deps
from itemsapi.web.responses import json_response

bp = Blueprint("changes", __name__)

LIMIT_DEFAULT, LIMIT_MAX = 100, 1000
WAIT_MAX = 30.0  # seconds
BIGINT_MAX = 2**63 - 1
CURSOR = re.compile(r"([0-9]{1,18})-([0-9]{1,18})")  # 18 digits: always within a bigint
# Bookkeeping, not an edit: left out of a version's changed fields.
NOT_FIELDS = frozenset({"id", "version", "created_at", "updated_at"})


def _changes() -> ChangeLog:
    return deps().changes


@bp.get("/changes")
def feed() -> Response:
    after, limit, wait = _feed_parameters(request.args)
    context = of(request.environ)
    page = _changes().feed(after, limit, context.deadline)
    follower = deps().follower
    if not page.changes and wait > 0 and follower is not None and context.idle is not None:
        with context.idle():
            came = follower.wait_past(page.next, wait)
        if came:
            page = _changes().feed(page.next, limit, context.deadline)
    body = {"changes": [_entry(row) for row in page.changes], "next_cursor": encode(page.next)}
    return json_response(body)


@bp.get("/items/<item_id:item_id>/history")
def history(item_id: int) -> Response:
    errors: list[FieldError] = []
    limit = _bounded_int(request.args, "limit", LIMIT_DEFAULT, LIMIT_MAX, errors)
    before = _bounded_int(request.args, "before", None, BIGINT_MAX, errors)
    _only(request.args, ("limit", "before"), errors)
    _raise(errors)
    # One more than asked: the oldest version's changed fields are told against it.
    rows = _changes().history(item_id, limit + 1, before, of(request.environ).deadline)
    if not rows and before is None:
        raise ItemNotFound(item_id)
    versions = [_version(row, rows[n + 1] if n + 1 < len(rows) else None)
                for n, row in enumerate(rows[:limit])]  # fmt: skip
    next_cursor = str(rows[limit - 1]["seq"]) if len(rows) > limit else None
    return json_response({"versions": versions, "next_cursor": next_cursor})


def encode(position: Position) -> str:
    return f"{position.tx}-{position.seq}"


def decode(text: str) -> Position | None:
    match = CURSOR.fullmatch(text)
    if match is None:
        return None
    return Position(int(match[1]), int(match[2]))


def _feed_parameters(args: Any) -> tuple[Position | None, int, float]:
    errors: list[FieldError] = []
    _only(args, ("after", "limit", "wait"), errors)
    after = None
    if (raw := _single(args, "after", errors)) is not None:
        decoded = decode(raw)
        if decoded is None:
            errors.append(FieldError("after", "is not a cursor this API issued"))
        else:
            after = decoded
    limit = _bounded_int(args, "limit", LIMIT_DEFAULT, LIMIT_MAX, errors)
    wait = 0.0
    if (raw := _single(args, "wait", errors)) is not None:
        try:
            wait = float(raw) if len(raw) <= 8 else -1.0
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= WAIT_MAX:  # NaN fails too
            errors.append(FieldError("wait", f"must be a number of seconds from 0 to {WAIT_MAX:g}"))
    _raise(errors)
    return after, limit, wait


def _only(args: Any, names: tuple[str, ...], errors: list[FieldError]) -> None:
    for name in args:
        if name not in names:
            errors.append(FieldError(name, f"is not a parameter; use {', '.join(names)}"))


def _single(args: Any, name: str, errors: list[FieldError]) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        errors.append(FieldError(name, "must be given at most once"))
        return None
    return values[0] if values else None


def _bounded_int(
    args: Any, name: str, default: int | None, most: int, errors: list[FieldError]
) -> Any:
    raw = _single(args, name, errors)
    if raw is None:
        return default
    if re.fullmatch(r"[0-9]{1,19}", raw) and 1 <= int(raw) <= most:
        return int(raw)
    errors.append(FieldError(name, f"must be an integer from 1 to {most}"))
    return default


def _raise(errors: list[FieldError]) -> None:
    if errors:
        problem = BadParameter(errors[0].field or "", errors[0].message)
        problem.errors = errors
        raise problem


def _entry(row: Row) -> dict[str, Any]:
    return {
        "cursor": f"{row['tx']}-{row['seq']}",
        "operation": row["operation"],
        "id": row["item_id"],
        "version": row["version"],
        "changed_at": row["changed_at"],
        "changed_by": row["changed_by"],
        "item": _item(row["item"]),
    }


def _version(row: Row, older: Row | None) -> dict[str, Any]:
    fields: list[str] | None = None
    item = _item(row["item"])
    if row["operation"] == "insert":
        fields = sorted(set(item) - NOT_FIELDS)
    elif row["operation"] == "update" and older is not None and older["operation"] != "delete":
        before = older["item"]
        fields = sorted(k for k in set(item) - NOT_FIELDS if item.get(k) != before.get(k))
    return {
        "version": row["version"],
        "operation": row["operation"],
        "changed_at": row["changed_at"],
        "changed_by": row["changed_by"],
        "changed_fields": fields,
        "item": item,
    }


def _item(item: dict[str, Any]) -> dict[str, Any]:
    """The item as the API shows it: its times with a Z, as every response writes UTC."""
    for key in ("created_at", "updated_at"):
        value = item.get(key)
        if isinstance(value, str) and value.endswith("+00:00"):
            item[key] = value[:-6] + "Z"
    return item
