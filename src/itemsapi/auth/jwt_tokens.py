"""OpenID Connect mode (ITEMSAPI_AUTH=jwt): bearer JWTs signed by the issuer, verified against
its JWKS with PyJWT. Only the configured asymmetric algorithms are accepted (never `none`,
never an HMAC keyed with a public key); exp, iss, aud and sub are required, nbf checked when
present. The JWKS is cached; a token naming a key id it lacks refetches it, at most once per
ITEMSAPI_JWT_JWKS_REFRESH_SECONDS (PyJWKClient's cooldown), so forged key ids cannot make the
service hammer the issuer."""

from __future__ import annotations

import logging

import jwt

from itemsapi.auth.scopes import Principal
from itemsapi.config import Settings
from itemsapi.errors import Unauthorized

log = logging.getLogger(__name__)

JWKS_LIFESPAN = 300.0  # seconds a fetched JWKS is trusted before it is fetched again
JWKS_TIMEOUT = 5.0
LEEWAY = 30  # seconds of clock skew allowed on exp and nbf


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        if not (settings.jwt_jwks_url and settings.jwt_issuer and settings.jwt_audience):
            raise ValueError("JWT mode needs an issuer, an audience and a JWKS URL")
        self._algorithms = settings.jwt_algorithms.split(",")
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._scope_claim = settings.jwt_scope_claim
        self._jwks = jwt.PyJWKClient(
            settings.jwt_jwks_url,
            lifespan=JWKS_LIFESPAN,
            timeout=JWKS_TIMEOUT,
            cooldown_duration=settings.jwt_jwks_refresh_seconds,
        )

    def verify(self, token: str) -> Principal:
        """The principal (subject and scopes) a token stands for; Unauthorized otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self._algorithms or not header.get("kid"):
                raise Unauthorized("invalid")
            key = self._jwks.get_signing_key(header["kid"])
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("cannot fetch the issuer's JWKS", extra={"error": str(exc)})
            raise Unauthorized("jwks_unavailable") from None
        except jwt.PyJWKClientError:
            raise Unauthorized("unknown_key") from None
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
