"""Domain errors: what the core (validation, repository) raises on purpose. web/problems.py maps
each class to an HTTP problem.

`str(error)` is for the log; `error.detail` is what a client may read, so an error that carries
the database's own words (a constraint's text, a connection failure) keeps them out of it.
"""

from __future__ import annotations


class ItemsError(Exception):
    """Base class of every error the core raises on purpose."""

    @property
    def detail(self) -> str:
        return str(self)


class ItemNotFound(ItemsError):
    def __init__(self, item_id: int) -> None:
        super().__init__(f"item {item_id} does not exist")
        self.item_id = item_id


class PreconditionFailed(ItemsError):
    """The item exists but its current version is not one the client named in If-Match."""

    def __init__(self, item_id: int, current_version: int) -> None:
        super().__init__(f"item {item_id} has changed: its current version is {current_version}")
        self.item_id = item_id
        self.current_version = current_version


class Unauthorized(ItemsError):
    """No usable credentials. `reason` (missing, malformed, unknown, revoked, invalid) is for the
    metrics and the log: the client gets the same answer whatever it is, so that a response
    never tells whether a key exists."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"authentication failed: {reason}")
        self.reason = reason

    @property
    def detail(self) -> str:
        return "this request needs a valid bearer token (Authorization: Bearer <token>)"

    @property
    def challenge(self) -> str:
        # RFC 6750 3.1: no error code when the request carried no credentials at all.
        return "Bearer" if self.reason == "missing" else 'Bearer error="invalid_token"'


class Forbidden(ItemsError):
    """Valid credentials without the scope the request needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this request needs the {scope!r} scope")
        self.scope = scope

    @property
    def challenge(self) -> str:
        return f'Bearer error="insufficient_scope", scope="{self.scope}"'


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

    @property
    def detail(self) -> str:
        count = len(self.errors)
        return f"the request body has {count} invalid field{'s' if count != 1 else ''}"


class LineError(FieldError):
    """A bad field of one line of an import body (lines count from 1)."""

    def __init__(self, line: int, field: str | None, message: str) -> None:
        super().__init__(field, message)
        self.line = line


class ImportInvalid(ValidationFailed):
    """Lines of an import break the contract: nothing was stored. Lists the first errors."""

    @property
    def detail(self) -> str:
        lines = len({getattr(e, "line", None) for e in self.errors})
        return f"nothing was imported: the first {lines} invalid line(s) are listed"


class BadParameter(ItemsError):
    """Query parameters are malformed (400): one, or several at once (`of`)."""

    def __init__(self, name: str, message: str, *more: FieldError) -> None:
        self.errors = [FieldError(name, message), *more]
        super().__init__(
            "; ".join(f"query parameter {e.field!r}: {e.message}" for e in self.errors)
        )

    @classmethod
    def of(cls, errors: list[FieldError]) -> BadParameter:
        return cls(errors[0].field or "", errors[0].message, *errors[1:])


class BadHeader(ItemsError):
    """A request header is malformed (400)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"header {name}: {message}")
        self.errors = [FieldError(name, message)]


class DatabaseError(ItemsError):
    """The database refused or could not run a statement. `kind` labels it in the metrics."""

    kind = "database"


class ConstraintViolation(DatabaseError):
    """The database refused the data (a CHECK or NOT NULL constraint, a value out of range).
    The message names the constraint, never the data."""

    kind = "constraint"
    errors: list[FieldError] = []  # noqa: RUF012 - no field to name: the row as a whole

    @property
    def detail(self) -> str:
        return f"the database refused the item: {self}"


class Conflict(DatabaseError):
    """The write conflicts with existing data (a unique constraint)."""

    kind = "conflict"

    @property
    def detail(self) -> str:
        return "the change conflicts with existing data"


class QueryTimeout(DatabaseError):
    """A statement ran past statement_timeout and was cancelled by the server."""

    kind = "statement_timeout"

    @property
    def detail(self) -> str:
        return "the database took too long to answer; try again shortly"


class DatabaseUnavailable(DatabaseError):
    """The database cannot serve requests now. `kind` says why: "pool_timeout" (no connection
    within the pool timeout), "connection" (the server refused or dropped the connection) or
    "schema" (see SchemaMissing)."""

    def __init__(self, message: str, kind: str = "connection") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def detail(self) -> str:
        return "the database is not available right now; try again shortly"


class SchemaMissing(DatabaseUnavailable):
    """The database answers but sql/init.sql has not been applied to it (or only an older
    version): every item request would fail until an operator runs `itemsapi migrate`."""

    def __init__(self, reason: str | None = None) -> None:
        because = f" ({reason})" if reason else ""
        super().__init__(
            f"the itemsapi schema is not in place{because}: run `itemsapi migrate`", "schema"
        )


class Overloaded(ItemsError):
    """The worker already runs and queues as many requests as it takes on (admission.py):
    refused at once, so that the client may retry rather than wait in a queue of timeouts."""

    @property
    def detail(self) -> str:
        return "the service is busy; try again shortly"


class BodyTooLarge(ItemsError):
    """The request body, declared or sent chunked, is over the size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")


class BodyIncomplete(ItemsError):
    """The client ended the body before its declared length, or declared no valid length."""

    def __init__(self, declared: int | None, received: int) -> None:
        what = f"of the {declared} declared" if declared is not None else "with an invalid length"
        super().__init__(f"the request body ended after {received} bytes {what}")


class IdentityProviderUnavailable(ItemsError):
    """A bearer JWT cannot be checked because the issuer's JWKS cannot be fetched now (none
    fetched yet, or the token names a key the last good set lacks while the issuer fails):
    the token may well be valid, so the client is told to retry, not that it is refused."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(f"the identity provider's keys are unavailable: {reason}")
        self.retry_after = retry_after

    @property
    def detail(self) -> str:
        return "the identity provider cannot be reached to check this token; try again shortly"


class IdempotencyKeyInUse(ItemsError):
    """A request with this Idempotency-Key is still being processed (409): the client retries
    later and then gets its response."""

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still in progress; retry shortly")


class IdempotencyKeyReused(ItemsError):
    """The Idempotency-Key was used before on another request (method, path or body): 422, and
    nothing is written."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was used for a different request; use a new key for a new request"
        )


class CursorExpired(ItemsError):
    def __init__(self) -> None:
        super().__init__("changes after this cursor have been pruned: copy the items again"
                         " and follow the feed from a cursor taken before the copy")  # fmt: skip
