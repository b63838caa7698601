"""The small parts config.py's Settings is made of: how a variable's text is taken before it is
validated, and how a bad one is told (one short line per bad variable, named as the operator
set it, instead of pydantic's own wording; config.py joins them into one error)."""

from __future__ import annotations

from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any


def upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def one_of(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return check


def algorithms_from(allowed: frozenset[str]) -> Callable[[str], str]:
    """A comma-separated list of algorithms from `allowed`, at least one; joined by commas."""

    def check(value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names or not set(names) <= allowed:
            raise ValueError(f"must list algorithms from {', '.join(sorted(allowed))}")
        return ",".join(names)

    return check


def none_word(value: Any) -> Any:
    # `none` switches preparing off (PgBouncer in transaction mode and other poolers hand a
    # client's prepared statements to other clients); an empty variable still means the default.
    return None if isinstance(value, str) and value.lower() == "none" else value


_NOT_A = {"int_parsing": "integer", "float_parsing": "number", "int_from_float": "integer"}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def describe(error: Any, variable: Callable[[str], str]) -> str:
    """One line for one of pydantic's errors, naming the variable (`variable(field name)`)."""
    name = variable(str(error["loc"][0]) if error["loc"] else "")
    kind, context = error["type"], error.get("ctx", {})
    if kind in _NOT_A:
        return f"{name}={error['input']!r} is not a valid {_NOT_A[kind]}"
    if kind == "extra_forbidden":
        return f"{name} is not a setting"
    if kind == "value_error":
        return f"{name} {context['error']}".strip()
    bounds = [f"{sign} {_number(context[key])}" for key, sign in _BOUNDS.items() if key in context]
    if bounds:
        return f"{name} must be {' and '.join(bounds)}"
    return f"{name}: {error['msg']}"


def _number(value: float) -> float:
    # A float field's bound 0 reads as 0, not 0.0.
    return int(value) if float(value).is_integer() else value


def origin_list(value: Any, credentials: bool) -> str:
    """ITEMSAPI_CORS_ORIGINS: `*`, or exact origins (scheme://host[:port]) separated by commas,
    returned joined by commas. `*` with credentials would hand every site a user's session."""
    if not isinstance(value, str):
        raise ValueError("must be a comma-separated list of origins")
    origins = [origin.strip() for origin in value.split(",") if origin.strip()]
    if "*" in origins:
        if len(origins) > 1 or credentials:
            raise ValueError("may be * alone, and only while ITEMSAPI_CORS_CREDENTIALS is off")
        return "*"
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest or origin != origin.lower():
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], in lower case)")
    return ",".join(origins)


def http_date(value: Any) -> Any:
    """ITEMSAPI_UNVERSIONED_SUNSET: a date (2027-06-30, midnight UTC), an RFC 3339 date and time,
    or an HTTP-date (Wed, 30 Jun 2027 00:00:00 GMT)."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if len(value) == 10:
        return value + "T00:00:00Z"
    if "," in value:
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return value  # reported by the field's own validation
    return value
