"""OpenID Connect mode (ITEMSAPI_AUTH=jwt): bearer JWTs signed by the issuer, verified against
its JWKS with PyJWT. Only the configured asymmetric algorithms are accepted (never `none`,
never an HMAC keyed with a public key); exp, iss, aud and sub are required, nbf checked when
present. The JWKS is cached and survives the issuer's outages (jwks.py); a token naming a key id
it lacks refetches it, at most once per ITEMSAPI_JWT_JWKS_REFRESH_SECONDS, so forged key ids
cannot make the service hammer the issuer.

Before PyJWT sees a token, its header and payload are parsed strictly here: a member name given
twice (which PyJWT's json.loads would settle silently with the last value, where another parser
may take the first) and NaN or Infinity refuse it, and so does an exp, nbf or iat that is not a
JSON number (RFC 7519 NumericDate), which PyJWT would take as a string through int()."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import jwt

from itemsapi import strict_json
from itemsapi.auth.jwks import Jwks
from itemsapi.auth.scopes import Principal
from itemsapi.config import Settings
from itemsapi.errors import Unauthorized

NUMERIC_DATES = ("exp", "nbf", "iat")
LEEWAY = 30  # seconds of clock skew allowed on exp and nbf


class JwtVerifier:
    def __init__(self, settings: Settings, jwks: Jwks) -> None:
        if not (settings.jwt_issuer and settings.jwt_audience):
            raise ValueError("JWT mode needs an issuer and an audience")
        self._algorithms = settings.jwt_algorithms.split(",")
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._scope_claim = settings.jwt_scope_claim
        self._jwks = jwks

    def verify(self, token: str) -> Principal:
        """The principal (subject and scopes) a token stands for; Unauthorized otherwise."""
        header = _strict_segments(token)
        kid = header.get("kid")
        if header.get("alg") not in self._algorithms or not isinstance(kid, str) or not kid:
            raise Unauthorized("invalid")
        key = self._jwks.key(kid)  # Unauthorized, or IdentityProviderUnavailable (503)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            raise Unauthorized("invalid") from None
        return Principal(str(claims["sub"]), _scopes(claims.get(self._scope_claim)))


def _scopes(claim: object) -> frozenset[str]:
    # OAuth's `scope` is one space-separated string; some issuers send a list (`scp`).
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list):
        return frozenset(scope for scope in claim if isinstance(scope, str))
    return frozenset()


def _strict_segments(token: str) -> dict[str, Any]:
    """The token's header, once its header and payload have passed the strict parse."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("invalid")
    header, payload = _strict_json(parts[0]), _strict_json(parts[1])
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise Unauthorized("invalid")
    for name in NUMERIC_DATES:
        value = payload.get(name)
        if name in payload and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Unauthorized("invalid")
    return header


def _strict_json(segment: str) -> Any:
    try:
        return strict_json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):  # NotStrictJson is a ValueError too
        raise Unauthorized("invalid") from None
