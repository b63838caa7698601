"""The response bodies other than the item itself: a page of items, a problem, the probes'
reports. Each model both shapes what the views send and is published as an OpenAPI component
(openapi.py), so the document cannot drift from the responses.

Items are not validated on the way out: a page's items are the database's rows as they come, and
ItemPage only publishes their shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from itemsapi.web.schemas import Item, without_defaults

Count = Annotated[int, Field(ge=0)]
Availability = Literal["ok", "unavailable"]


class Body(BaseModel):
    # Serialized with exclude_unset: a field the view does not set is left out of the body.
    model_config = ConfigDict(json_schema_extra=without_defaults)


class ItemPage(Body):
    model_config = ConfigDict(extra="forbid")

    items: list[Item]
    next_cursor: str | None
    count: int | None = Field(
        default=None, ge=0, description="The total asked for with Prefer: count=... (only then)."
    )


class ImportResult(Body):
    """What POST /v1/items/import answers once every line is stored."""

    imported: Count


class ItemRef(Body):
    """An item created by a batch, as `Prefer: return=minimal` answers it."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[int, Field(ge=1)]
    version: Annotated[int, Field(ge=1)]


class CreatedItems(Body):
    """201 to a batch: the created items in the request's order (ItemRefs with
    `Prefer: return=minimal`)."""

    model_config = ConfigDict(extra="forbid")

    items: list[Item | ItemRef]


class ProblemField(Body):
    field: str | None
    message: str
    line: Annotated[
        int, Field(ge=1, description="The line of an import body (from 1) the error is on.")
    ] = None  # type: ignore[assignment]


class Problem(Body):
    """RFC 9457 problem details."""

    type: Annotated[str, Field(json_schema_extra={"format": "uri-reference"})]
    title: str
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str
    errors: Annotated[
        list[ProblemField],
        Field(description="Every bad field (422) or parameter (400)."),
    ] = None  # type: ignore[assignment]


class ProbeStatus(Body):
    status: str
    reason: str | None = None


class PoolFigures(Body):
    size: Count
    available: Count
    waiting: Count


class DatabaseHealth(Body):
    status: Availability
    latency_ms: float | None
    error: str | None = None
    pool: PoolFigures


class CacheHealth(Body):
    status: Annotated[
        Literal["listening", "not listening", "off"],
        Field(
            description="The read cache's change listener. Not listening: the cache is bypassed "
            "(every read goes to the database) until it listens again; off: ITEMSAPI_CACHE=false."
        ),
    ]
    entries: Count


class IdentityProviderHealth(Body):
    status: Annotated[
        Literal["ok", "stale", "unavailable", "off"],
        Field(
            description="JWT mode's key set (JWKS). ok: fetched within its lifespan; stale: "
            "kept and used through a failing provider or past its lifespan (tokens still "
            "verify); unavailable: none fetched yet, so no token can be checked and /health is "
            "503; off: not in JWT mode."
        ),
    ]
    key_set_age_seconds: Annotated[float, Field(ge=0)] | None
    last_outcome: Annotated[
        Literal["ok", "timeout", "http_error", "connection", "malformed"] | None,
        Field(description="The last fetch's outcome; null before the first."),
    ]
    consecutive_failures: Count


class HealthChecks(Body):
    database: DatabaseHealth
    cache: CacheHealth
    identity_provider: IdentityProviderHealth


class Health(Body):
    status: Availability
    version: str
    environment: str
    checks: HealthChecks


class IndexLinks(Body):
    items: str
    docs: str
    openapi: str
    health: str


class Index(Body):
    name: str
    version: str
    links: IndexLinks


Operation = Literal["insert", "update", "delete"]
CHANGER = (
    "The API's principal (an API key's id, a JWT's subject) for a write made through the API,"
    " else the database role."
)
Changer = Annotated[str, Field(description=CHANGER)]
ITEM_AFTER = (
    "The item after the change, as GET /v1/items/{item_id} shows it; {id} alone for a delete."
)
ItemAfter = Annotated[dict[str, Any], Field(description=ITEM_AFTER)]


class Change(Body):
    """One committed change to an item, in the feed (GET /v1/changes)."""

    cursor: Annotated[str, Field(description="This change's position: `after` it, the next.")]
    operation: Operation
    id: Annotated[int, Field(ge=1)]
    version: Annotated[int, Field(ge=1, description="After the change; a delete's: the deleted.")]
    changed_at: AwareDatetime
    changed_by: Changer
    item: ItemAfter


class ChangePage(Body):
    changes: list[Change]
    next_cursor: Annotated[str, Field(description="Where to read on from (`after`), also when "
                                      "there were no changes.")]  # fmt: skip


class ItemVersion(Body):
    """One version of an item, in its history (GET /v1/items/{item_id}/history)."""

    version: Annotated[int, Field(ge=1)]
    operation: Operation
    changed_at: AwareDatetime
    changed_by: Changer
    changed_fields: Annotated[list[str] | None, Field(description="The fields this change set "
        "to new values; every field for an insert; null for a delete, or when the version "
        "before is no longer kept.")]  # fmt: skip
    item: ItemAfter


class ItemHistory(Body):
    versions: list[ItemVersion]
    next_cursor: Annotated[str | None, Field(description="`before` for the next, older page.")]


# Published as components under these names; the models they are made of are inlined.
PUBLISHED = (
    ItemPage, CreatedItems, ImportResult, Problem, ProbeStatus, Health, Index, ChangePage,
    ItemHistory,
)  # fmt: skip
