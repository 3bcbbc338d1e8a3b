"""The one access token verifier, shared by the broker plugin, the hooks and the API.

Imports neither FastAPI nor SQLModel. Every check of DESIGN.md's access token section
runs here, in this order: shape, header (`alg` pinned to ES256, `typ` at+jwt, `kid`),
key lookup, signature, registered claims, binding to the MQTT identity, then device
state and the deny list. Any failure raises `TokenRejected` with a machine-readable
`reason`; nothing else escapes `Verifier.verify`.

    TokenRejected
    ├── reason in CREDENTIAL_REASONS    -> bad credentials
    ├── reason in AUTHORIZATION_REASONS -> not authorized
    └── reason "unavailable"            -> the trust store cannot answer

`credbroker.decision` turns reasons into the kinds every enforcement point answers with.
"""

from __future__ import annotations

import binascii
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson

from credbroker import jws
from credbroker.claims import ACCESS_TOKEN_TYP, SIGNING_ALG, AccessClaims, parse_kid

CREDENTIAL_REASONS = frozenset(
    {
        "malformed",
        "bad_header",
        "unknown_kid",
        "key_retired",  # signed by the device's key before it was retired: renew
        "bad_signature",
        "expired",
        "not_yet_valid",
        "bad_issuer",
        "bad_audience",
        "missing_claim",
        "bad_claim",
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


class StoreUnavailable(Exception):
    """Raised by a `TrustStore` when it cannot answer; the verifier fails closed."""


@dataclass(frozen=True, slots=True)
class DeviceState:
    status: str  # "active", "disabled" or "revoked"
    tokens_valid_after: int  # iat strictly before this is revoked (bulk revocation)


class TrustStore(Protocol):
    """Where the verifier learns keys and revocations. Implementations cache."""

    def signing_key(self, kid: str) -> jws.PublicKey | None:
        """The public key of `kid` if it verifies now."""
        ...

    def retired_key(self, kid: str) -> jws.PublicKey | None:
        """The public key of `kid` if it verified once and no longer does (rotation)."""
        ...

    def device_state(self, device_id: str) -> DeviceState | None: ...

    def is_jti_revoked(self, jti: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    issuer: str
    audience: str = "mqtt"
    leeway: int = 30


# An ES256 signature is 64 bytes: 86 base64url characters, the last carrying 4 bits and
# 2 zero bits. Only those 16 last characters are canonical: any other decodes to the
# same signature, so one token would have several spellings (RFC 4648 section 3.5).
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{85}[AEIMQUYcgkosw048])")


def _b64decode(segment: str) -> bytes:
    """base64url without padding; the alphabet was already checked by `_COMPACT`."""
    if len(segment) % 4 == 1:
        raise TokenRejected("malformed")
    try:
        return binascii.a2b_base64(
            segment.replace("-", "+").replace("_", "/") + "=" * (-len(segment) % 4)
        )
    except binascii.Error as exc:
        raise TokenRejected("malformed") from exc


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = orjson.loads(_b64decode(segment))
    except orjson.JSONDecodeError as exc:
        raise TokenRejected("malformed") from exc
    if not isinstance(value, dict):
        raise TokenRejected("malformed")
    return value


_NUMBER = (int, float)
# Distinct verified headers remembered: about one per signing key in use.
MAX_HEADERS = 100_000


def _is_str_list(value: object) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _kid(header_b64: str) -> str:
    """Check a header and return its kid."""
    header = _json_object(header_b64)
    kid = header.get("kid")
    if (
        header.get("alg") != SIGNING_ALG
        or header.get("typ") != ACCESS_TOKEN_TYP
        or "crit" in header
        or not isinstance(kid, str)
        or parse_kid(kid) is None
    ):
        raise TokenRejected("bad_header")
    return kid


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
        self._headers: dict[str, str] = {}  # verified header segment -> its kid

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
        return self.check(token, client_id=client_id, username=username, now=now)[0]

    def check(
        self,
        token: str,
        *,
        client_id: str | None = None,
        username: str | None = None,
        now: float | None = None,
    ) -> tuple[AccessClaims, str]:
        """`verify`, also returning the kid that signed: a grant keeps it, so that its
        standing can be checked again later without the token."""
        # One regex both splits and checks the alphabet (RFC 7515 section 7.1); an ES256
        # signature is 64 bytes, 86 base64url characters.
        if type(token) is not str or len(token) > jws.MAX_TOKEN_CHARS:
            raise TokenRejected("malformed")
        match = _COMPACT.fullmatch(token)
        if match is None:
            raise TokenRejected("malformed")
        header_b64, payload_b64, signature_b64 = match.groups()
        known = self._headers.get(header_b64)
        kid = known or _kid(header_b64)
        signing_input = token[: len(header_b64) + len(payload_b64) + 1].encode("ascii")
        signature = _b64decode(signature_b64)
        try:
            key = self.store.signing_key(kid)
        except StoreUnavailable as exc:
            raise TokenRejected(UNAVAILABLE) from exc
        if key is None:
            raise TokenRejected(self._why_no_key(kid, signing_input, signature))
        try:
            jws.verify_es256(key, signing_input, signature)
        except jws.JWSError as exc:
            raise TokenRejected("bad_signature") from exc
        if known is None:
            # Only headers that signed something are remembered: anyone's made-up
            # headers would otherwise fill memory before any key lookup.
            if len(self._headers) >= MAX_HEADERS:
                self._headers.clear()
            self._headers[header_b64] = kid
        claims = _json_object(payload_b64)
        self._check_claims(claims, kid, self.clock() if now is None else now)
        sub = claims["sub"]
        if (client_id is not None and client_id != sub) or (
            username is not None and username != sub
        ):
            raise TokenRejected("identity_mismatch")
        self._check_state(sub, claims["iat"], claims["jti"])
        return cast(AccessClaims, claims), kid

    def check_standing(self, *, device_id: str, kid: str, iat: float, jti: str) -> None:
        """Raise `TokenRejected` if a token verified earlier has lost its standing since:
        its signing key retired, its device disabled, revoked or deleted, itself revoked."""
        try:
            if self.store.signing_key(kid) is None:
                retired = self.store.retired_key(kid) is not None
                raise TokenRejected("key_retired" if retired else "unknown_kid")
        except StoreUnavailable as exc:
            raise TokenRejected(UNAVAILABLE) from exc
        self._check_state(device_id, iat, jti)

    def _why_no_key(self, kid: str, signing_input: bytes, signature: bytes) -> str:
        """A token of a retired key is a real device's, not a guess: it should renew,
        and its refusal must not count against the address it shares with others."""
        try:
            retired = self.store.retired_key(kid)
        except StoreUnavailable:
            return UNAVAILABLE
        if retired is not None:
            try:
                jws.verify_es256(retired, signing_input, signature)
            except jws.JWSError:
                return "bad_signature"
            return "key_retired"
        return "unknown_kid"

    def _check_claims(self, claims: dict[str, Any], kid: str, now: float) -> None:
        # Plain lookups and `type(...) in` tests: this runs on every CONNECT.
        try:
            exp, nbf, iat = claims["exp"], claims["nbf"], claims["iat"]
            sub, client_id, iss = claims["sub"], claims["client_id"], claims["iss"]
            aud, jti, acl = claims["aud"], claims["jti"], claims["acl"]
        except KeyError as exc:
            raise TokenRejected("missing_claim") from exc
        if not (type(exp) in _NUMBER and type(nbf) in _NUMBER and type(iat) in _NUMBER):
            raise TokenRejected("bad_claim")  # bool is not a number here, unlike in Python
        if not (type(sub) is str and sub and type(jti) is str and jti):
            raise TokenRejected("bad_claim")
        leeway = self.policy.leeway
        if exp <= now - leeway:
            raise TokenRejected("expired")
        if nbf > now + leeway or iat > now + leeway:
            raise TokenRejected("not_yet_valid")
        if iss != self.policy.issuer:
            raise TokenRejected("bad_issuer")
        if aud != self.policy.audience and not (type(aud) is list and self.policy.audience in aud):
            raise TokenRejected("bad_audience")
        # The kid names the device whose key signed: a token for one device can never
        # be passed off as another's, whatever its claims say.
        if client_id != sub or kid[: kid.rindex("#")] != sub:
            raise TokenRejected("identity_mismatch")
        if not (
            type(acl) is dict and _is_str_list(acl.get("pub")) and _is_str_list(acl.get("sub"))
        ):
            raise TokenRejected("bad_claim")

    def _check_state(self, device_id: str, iat: float, jti: str) -> None:
        try:
            state = self.store.device_state(device_id)
            revoked = state is not None and self.store.is_jti_revoked(jti)
        except StoreUnavailable as exc:
            raise TokenRejected(UNAVAILABLE) from exc
        if state is None:
            raise TokenRejected("device_unknown")
        if state.status == "revoked":
            raise TokenRejected("device_revoked")
        if state.status != "active":
            raise TokenRejected("device_disabled")
        if iat < state.tokens_valid_after or revoked:
            raise TokenRejected("revoked")
