"""OpenID Connect mode (ITEMSAPI_AUTH=jwt): bearer JWTs signed by the issuer, verified against
its JWKS with PyJWT. Only the configured asymmetric algorithms are accepted (never `none`,
never an HMAC keyed with a public key); exp, iss, aud and sub are required, nbf checked when
present. The JWKS is cached and survives the issuer's outages (jwks.py); a token naming a key id
it lacks refetches it, at most once per ITEMSAPI_JWT_JWKS_REFRESH_SECONDS, so forged key ids
cannot make the service hammer the issuer."""

from __future__ import annotations

import jwt

from itemsapi.auth.jwks import Jwks
from itemsapi.auth.scopes import Principal
from itemsapi.config import Settings
from itemsapi.errors import Unauthorized

LEEWAY = 30  # seconds of clock skew allowed on exp and nbf


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        if not (settings.jwt_jwks_url and settings.jwt_issuer and settings.jwt_audience):
            raise ValueError("JWT mode needs an issuer, an audience and a JWKS URL")
        self._algorithms = settings.jwt_algorithms.split(",")
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._scope_claim = settings.jwt_scope_claim
        self._jwks = Jwks(settings.jwt_jwks_url, settings.jwt_jwks_refresh_seconds)

    def verify(self, token: str) -> Principal:
        """The principal (subject and scopes) a token stands for; Unauthorized otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("invalid") from None
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
