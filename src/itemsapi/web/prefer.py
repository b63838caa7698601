"""The Prefer request header (RFC 7240), read in one place: `return=minimal` on writes, and
`count=exact|planned|estimated` on the list. A preference not understood is ignored, as the RFC
says; one that was honoured is named back in Preference-Applied."""

from __future__ import annotations

PREFER = "Prefer"
PREFER_ENVIRON = "HTTP_PREFER"  # PREFER as the WSGI environ names it
APPLIED = "Preference-Applied"
MINIMAL = "return=minimal"


def preferences(header: str | None) -> dict[str, str]:
    """Each preference's value by its name, both lower-cased ('' for a bare name); a name given
    twice keeps its first value (RFC 7240, section 2). Parameters after `;` are ignored."""
    found: dict[str, str] = {}
    for part in (header or "").split(","):
        name, _, value = part.split(";", 1)[0].partition("=")
        name = name.strip().lower()
        if name and name not in found:
            found[name] = value.strip().strip('"').lower()
    return found


def prefers_minimal(header: str | None) -> bool:
    """Whether Prefer asks for return=minimal."""
    return preferences(header).get("return") == "minimal"
