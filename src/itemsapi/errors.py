"""Domain errors, raised by the core (repository, validation) and mapped to HTTP in errors.py."""

from __future__ import annotations


class ItemsError(Exception):
    """Base class of every error the core raises on purpose."""


class ItemNotFound(ItemsError):
    def __init__(self, item_id: int) -> None:
        super().__init__(f"item {item_id} does not exist")
        self.item_id = item_id


class PreconditionFailed(ItemsError):
    """The item exists but its current version is not one the client named in If-Match."""

    def __init__(self, item_id: int, current_version: int) -> None:
        super().__init__(f"item {item_id} is at version {current_version}")
        self.item_id = item_id
        self.current_version = current_version


class ConstraintViolation(ItemsError):
    """The database refused the data (a CHECK or NOT NULL constraint, a value out of range)."""


class Conflict(ItemsError):
    """The write conflicts with existing data (a unique constraint)."""


class DatabaseUnavailable(ItemsError):
    """The database cannot serve requests now: the pool is exhausted, the server is down, or
    the schema is not in place.

    `kind` says which: "pool_timeout" (no connection within the pool timeout), "connection"
    (the server refused or dropped the connection) or "schema" (see SchemaMissing)."""

    def __init__(self, message: str, kind: str = "connection") -> None:
        super().__init__(message)
        self.kind = kind


class SchemaMissing(DatabaseUnavailable):
    """The database answers but sql/init.sql has not been applied to it (or only an older
    version): every item request would fail until an operator runs `itemsapi init-db`."""

    def __init__(self, reason: str | None = None) -> None:
        because = f" ({reason})" if reason else ""
        super().__init__(
            f"the itemsapi schema is not in place{because}: run `itemsapi init-db`", "schema"
        )


class QueryTimeout(ItemsError):
    """A statement ran past statement_timeout and was cancelled by the server."""


class FieldError(ItemsError):
    """One bad input field; `field` is a dotted path, or None for the body as a whole."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class ValidationFailed(ItemsError):
    """The request body is well-formed JSON but breaks the contract; lists every bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


class BadParameter(ItemsError):
    """A query parameter is malformed (400)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
