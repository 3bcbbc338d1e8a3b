"""The one access token verifier, shared by the broker plugin, the hooks and the API.

Imports neither FastAPI nor SQLModel. Every check of DESIGN.md's access token section
runs here, in this order: shape, header (`alg` pinned to ES256, `typ` at+jwt, `kid`),
key lookup, signature, registered claims, binding to the MQTT identity, then device
state and the deny list. Any failure raises `TokenRejected` with a machine-readable
`reason`; nothing else escapes `Verifier.verify`.

    TokenRejected
    ├── reason in CREDENTIAL_REASONS  -> bad credentials   (CONNACK 4, HTTP 401)
    ├── reason in AUTHORIZATION_REASONS -> not authorized  (CONNACK 5, HTTP 403)
    └── reason "unavailable"          -> key store down    (CONNACK 3, HTTP 503)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from credbroker import jws
from credbroker.claims import ACCESS_TOKEN_TYP, SIGNING_ALG, AccessClaims, parse_kid

CREDENTIAL_REASONS = frozenset(
    {
        "malformed", "bad_header", "unknown_kid", "bad_signature", "expired",
        "not_yet_valid", "bad_issuer", "bad_audience", "missing_claim", "bad_claim",
        "identity_mismatch",
    }
)
AUTHORIZATION_REASONS = frozenset(
    {"device_disabled", "device_revoked", "device_unknown", "revoked"}
)
UNAVAILABLE = "unavailable"


class TokenRejected(Exception):
    """The token was refused; `reason` says why in a word meant for machines."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def is_credential_error(self) -> bool:
        return self.reason in CREDENTIAL_REASONS

    @property
    def is_unavailable(self) -> bool:
        return self.reason == UNAVAILABLE


class StoreUnavailable(Exception):
    """Raised by a `TrustStore` when it cannot answer; the verifier fails closed."""


@dataclass(frozen=True, slots=True)
class DeviceState:
    status: str  # "active", "disabled" or "revoked"
    tokens_valid_after: int  # iat strictly before this is revoked (bulk revocation)


class TrustStore(Protocol):
    """Where the verifier learns keys and revocations. Implementations cache."""

    def signing_key(self, kid: str) -> jws.PublicKey | None: ...

    def device_state(self, device_id: str) -> DeviceState | None: ...

    def is_jti_revoked(self, jti: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    issuer: str
    audience: str = "mqtt"
    leeway: int = 30


def _int_claim(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if value is None:
        raise TokenRejected("missing_claim")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected("bad_claim")
    return int(value)


def _str_claim(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise TokenRejected("missing_claim")
    if not isinstance(value, str) or not value:
        raise TokenRejected("bad_claim")
    return value


class Verifier:
    """Verifies access tokens against a policy and a trust store.

    Args:
        policy: issuer, audience and clock leeway to enforce.
        store: source of signing public keys, device state and the jti deny list.
        clock: seconds since the epoch; injected so tests need no sleeping.
    """

    def __init__(
        self, policy: VerifyPolicy, store: TrustStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy
        self.store = store
        self.clock = clock
        self._headers: dict[str, str] = {}  # header segment -> kid, for the hot path

    def verify(
        self,
        token: str,
        *,
        client_id: str | None = None,
        username: str | None = None,
        now: float | None = None,
    ) -> AccessClaims:
        """Return the claims of a valid token or raise `TokenRejected`.

        Args:
            token: the compact JWS.
            client_id: the MQTT client id, which must equal `sub` when given.
            username: the MQTT username, which must equal `sub` when given.
            now: the time to check against; defaults to the injected clock.
        """
        try:
            parsed = jws.parse(token)
        except jws.JWSError as exc:
            raise TokenRejected("malformed") from exc
        kid = self._kid(parsed.header, token)
        try:
            key = self.store.signing_key(kid)
        except StoreUnavailable as exc:
            raise TokenRejected(UNAVAILABLE) from exc
        if key is None:
            raise TokenRejected("unknown_kid")
        try:
            jws.verify_signature(SIGNING_ALG, key, parsed.signing_input, parsed.signature)
        except jws.JWSError as exc:
            raise TokenRejected("bad_signature") from exc
        claims = parsed.payload
        self._check_claims(claims, kid, self.clock() if now is None else now)
        sub = claims["sub"]
        if (client_id is not None and client_id != sub) or (
            username is not None and username != sub
        ):
            raise TokenRejected("identity_mismatch")
        self._check_state(claims)
        return cast(AccessClaims, claims)

    def _kid(self, header: dict[str, Any], token: str) -> str:
        segment = token[: token.index(".")]
        cached = self._headers.get(segment)
        if cached is not None:
            return cached
        kid = header.get("kid")
        if (
            header.get("alg") != SIGNING_ALG
            or header.get("typ") != ACCESS_TOKEN_TYP
            or not isinstance(kid, str)
            or parse_kid(kid) is None
        ):
            raise TokenRejected("bad_header")
        if len(self._headers) < 100_000:
            self._headers[segment] = kid
        return kid

    def _check_claims(self, claims: dict[str, Any], kid: str, now: float) -> None:
        leeway = self.policy.leeway
        exp = _int_claim(claims, "exp")
        nbf = _int_claim(claims, "nbf")
        iat = _int_claim(claims, "iat")
        sub = _str_claim(claims, "sub")
        _str_claim(claims, "jti")
        if exp <= now - leeway:
            raise TokenRejected("expired")
        if nbf > now + leeway or iat > now + leeway:
            raise TokenRejected("not_yet_valid")
        if _str_claim(claims, "iss") != self.policy.issuer:
            raise TokenRejected("bad_issuer")
        aud = claims.get("aud")
        if aud is None:
            raise TokenRejected("missing_claim")
        if not (aud == self.policy.audience or (
            isinstance(aud, list) and self.policy.audience in aud
        )):
            raise TokenRejected("bad_audience")
        # The kid names the device whose key signed: a token for one device can never
        # be passed off as another's, whatever its claims say.
        if _str_claim(claims, "client_id") != sub or kid.rpartition("#")[0] != sub:
            raise TokenRejected("identity_mismatch")
        acl = claims.get("acl")
        if not isinstance(acl, dict) or not all(
            isinstance(acl.get(k), list) and all(isinstance(t, str) for t in acl[k])
            for k in ("pub", "sub")
        ):
            raise TokenRejected("bad_claim")

    def _check_state(self, claims: dict[str, Any]) -> None:
        try:
            state = self.store.device_state(claims["sub"])
            revoked = state is not None and self.store.is_jti_revoked(claims["jti"])
        except StoreUnavailable as exc:
            raise TokenRejected(UNAVAILABLE) from exc
        if state is None:
            raise TokenRejected("device_unknown")
        if state.status == "revoked":
            raise TokenRejected("device_revoked")
        if state.status != "active":
            raise TokenRejected("device_disabled")
        if claims["iat"] < state.tokens_valid_after or revoked:
            raise TokenRejected("revoked")
