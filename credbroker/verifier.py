"""The one access token verifier, shared by the broker plugin, the hooks and the API.

Imports neither FastAPI nor SQLModel. Every check of DESIGN.md's access token section
runs here, in this order: shape, header (`alg` pinned to ES256, `typ` at+jwt, `kid`),
key lookup, signature, registered claims, binding to the MQTT identity, then device
state and the deny list. Any failure raises `TokenRejected` with a machine-readable
`reason`; nothing else escapes `Verifier.verify`.

    TokenRejected.reason: Reason
    ├── .denies == "credentials"   the token is bad (malformed, expired, bad signature...)
    ├── .denies == "standing"      the device or the token lost the right (disabled...)
    └── .denies == "unavailable"   the trust store cannot answer

`credbroker.decision` turns reasons into the kinds every enforcement point answers with.
"""

from __future__ import annotations

import enum
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson

from credbroker import jws
from credbroker.claims import (
    ACCESS_TOKEN_TYP,
    MAX_TOKEN_TTL,
    REFERENCE_PREFIX,
    SIGNING_ALG,
    AccessClaims,
    device_of_client_id,
    is_device_id,
    parse_kid,
)


class Reason(enum.StrEnum):
    """Why a token was refused, in a word meant for machines (metrics, audit, tests).

    `denies` says what the refusal means (`credentials`: the token is bad; `standing`:
    the token is fine but its device or itself lost the right; `unavailable`: nobody
    could tell); `signed` that the token's signature verified, so it is a real device's
    token, not a guess.
    """

    MISSING_CREDENTIALS = "missing_credentials"  # no client id, username or password
    MALFORMED = "malformed"
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105 - a well-formed reference token never issued
    BAD_HEADER = "bad_header"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    KEY_RETIRED = "key_retired"  # signed by the device's key before it was retired: renew
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_ISSUER = "bad_issuer"
    BAD_AUDIENCE = "bad_audience"
    MISSING_CLAIM = "missing_claim"
    BAD_CLAIM = "bad_claim"
    IDENTITY_MISMATCH = "identity_mismatch"
    # A certificate-bound token (cnf.x5t#S256, RFC 8705) on a connection without that
    # client certificate: a copied token, refused like a bad one.
    CERTIFICATE_MISMATCH = "certificate_mismatch"
    # A client certificate and no password (`credbroker.decision`, certificate login),
    # refused: the fleet does not allow it, or the certificate is not the device's.
    CERTIFICATE_REFUSED = "certificate_refused"
    DEVICE_DISABLED = "device_disabled"
    DEVICE_REVOKED = "device_revoked"
    DEVICE_UNKNOWN = "device_unknown"
    REVOKED = "revoked"
    # Proof of possession (credbroker.proof): the token is real, its sender unproven.
    PROOF_REQUIRED = "proof_required"
    BAD_PROOF = "bad_proof"
    PROOF_REPLAYED = "proof_replayed"
    UNAVAILABLE = "unavailable"

    @property
    def denies(self) -> str:
        if self is Reason.UNAVAILABLE:
            return "unavailable"
        return "standing" if self in _STANDING else "credentials"

    @property
    def signed(self) -> bool:
        return self in _SIGNED


_STANDING = frozenset(
    {Reason.DEVICE_DISABLED, Reason.DEVICE_REVOKED, Reason.DEVICE_UNKNOWN, Reason.REVOKED}
)
_SIGNED = frozenset(
    {
        Reason.KEY_RETIRED,
        Reason.EXPIRED,
        Reason.NOT_YET_VALID,
        Reason.DEVICE_DISABLED,
        Reason.DEVICE_REVOKED,
        Reason.REVOKED,
        # A real token without the key's proof: a stolen one, or a device whose clock is
        # off. No guess to slow down (a proof is a signature), and the device is told 4.
        Reason.PROOF_REQUIRED,
        Reason.BAD_PROOF,
        Reason.PROOF_REPLAYED,
    }
)


class TokenRejected(Exception):
    """The token was refused; `reason` says why in a word meant for machines."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class StoreUnavailable(Exception):
    """Raised by a `TrustStore` when it cannot answer; the verifier fails closed."""


@dataclass(frozen=True, slots=True)
class DeviceState:
    status: str  # "active", "disabled" or "revoked"
    tokens_valid_after: int  # iat strictly before this is revoked (bulk revocation)
    proof_required: bool = False  # its fleet's `proof_of_possession` (credbroker.proof)


@dataclass(frozen=True, slots=True)
class Signer:
    """A device of a `device-signed` fleet, as its own tokens are checked (README, Token
    formats): its credential keys with their pinned algorithms, what `aud` must be, and
    what its fleet grants (a JWT's claims, which a Cloud IoT Core token does not carry)."""

    keys: tuple[tuple[str, jws.PublicKey], ...]  # (alg, key) of each live credential key
    audience: str
    iot_core_client_ids: bool
    fleet: str
    kid: str  # the device's signing key, whose standing its sessions follow
    pub: tuple[str, ...]
    sub: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CertificateHolder:
    """A device of a fleet with `certificate_login` (README, Certificates as device
    credentials): what says a certificate is its (`certificates.names_device`) and what
    its fleet grants, as for a device-signed fleet's `Signer`."""

    fleet: str
    kid: str  # the device's signing key, whose standing its sessions follow
    registered: frozenset[str]  # x5t#S256 of its live credential keys
    cas: tuple[str, ...]  # PEM of its fleet's CAs
    pub: tuple[str, ...]
    sub: tuple[str, ...]


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

    def reference(self, token_hash: str) -> tuple[dict[str, Any], str] | None:
        """The claims of the reference token of this SHA-256 (hex), with the kid of the
        signing key whose standing it follows; None if no such token was issued."""
        ...

    def signer(self, device_id: str) -> Signer | None:
        """The device if its fleet's token format is `device-signed`, else None."""
        ...

    def proof_required(self, device_id: str) -> bool:
        """Whether the device's fleet sets `proof_of_possession` (README)."""
        ...

    def proof_key(self, device_id: str, jkt: str) -> tuple[str, jws.PublicKey] | None:
        """(alg, key) of the device's live credential key of RFC 7638 thumbprint `jkt`."""
        ...

    def certificate_holder(self, device_id: str) -> CertificateHolder | None:
        """The device if its fleet sets `certificate_login`, else None."""
        ...


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    issuer: str
    audience: str = "mqtt"
    leeway: int = 30


# An ES256 signature is 64 bytes: 86 base64url characters, the last carrying 4 bits and
# 2 zero bits. Only those 16 last characters are canonical: any other decodes to the
# same signature, so one token would have several spellings (RFC 4648 section 3.5).
_SIGNATURE_CHARS = 86
_CANONICAL_LAST = frozenset("AEIMQUYcgkosw048")
_REFERENCE_START = REFERENCE_PREFIX + "_"


def _b64decode(segment: str) -> bytes:
    try:
        return jws.b64url_decode(segment)
    except jws.JWSError as exc:
        raise TokenRejected(Reason.MALFORMED) from exc


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = orjson.loads(_b64decode(segment))
    except orjson.JSONDecodeError as exc:
        raise TokenRejected(Reason.MALFORMED) from exc
    if not isinstance(value, dict):
        raise TokenRejected(Reason.MALFORMED)
    return value


# A reference token: the prefix and 256 random bits in base64url (README, Token formats).
_REFERENCE_RE = re.compile(rf"{REFERENCE_PREFIX}_[A-Za-z0-9_-]{{43}}")
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
        raise TokenRejected(Reason.BAD_HEADER)
    return kid


def _ours(header_b64: str) -> bool:
    """Whether a header claims to be one of our access tokens (`typ` at+jwt): anything
    else may be a device's own token (`_check_device_signed`)."""
    return _json_object(header_b64).get("typ") == ACCESS_TOKEN_TYP


def _verifies(alg: str, key: jws.PublicKey, signing_input: bytes, signature: bytes) -> bool:
    try:
        jws.verify_signature(alg, key, signing_input, signature)
    except jws.JWSError:
        return False
    return True


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
        standing can be checked again later without the token.

        The token's format is told by its shape, here and nowhere else: a reference
        token (`cbr_...`) is resolved through the trust store, anything else must be a
        compact JWS. Both then pass the same checks of claims, binding and standing."""
        if type(token) is str and token.startswith(_REFERENCE_START):
            return self._check_reference(token, client_id, username, now)
        # The alphabet of each segment (RFC 7515 section 7.1) is checked as it is
        # decoded: the signature's before any key lookup, the header's unless it is a
        # verified one, the payload's once it is signed.
        if type(token) is not str or len(token) > jws.MAX_TOKEN_CHARS or not token.isascii():
            raise TokenRejected(Reason.MALFORMED)
        segments = token.split(".")
        if len(segments) != 3:
            raise TokenRejected(Reason.MALFORMED)
        header_b64, payload_b64, signature_b64 = segments
        known = self._headers.get(header_b64)
        if known is None and not _ours(header_b64):
            return self._check_device_signed(segments, client_id, now)
        if len(signature_b64) != _SIGNATURE_CHARS or signature_b64[-1] not in _CANONICAL_LAST:
            raise TokenRejected(Reason.MALFORMED)
        kid = known or _kid(header_b64)
        signing_input = token[: len(header_b64) + len(payload_b64) + 1].encode("ascii")
        signature = _b64decode(signature_b64)
        try:
            key = self.store.signing_key(kid)
        except StoreUnavailable as exc:
            raise TokenRejected(Reason.UNAVAILABLE) from exc
        if key is None:
            raise TokenRejected(self._why_no_key(kid, signing_input, signature))
        try:
            jws.verify_es256(key, signing_input, signature)
        except jws.JWSError as exc:
            raise TokenRejected(Reason.BAD_SIGNATURE) from exc
        if known is None:
            # Only headers that signed something are remembered: anyone's made-up
            # headers would otherwise fill memory before any key lookup.
            if len(self._headers) >= MAX_HEADERS:
                self._headers.clear()
            self._headers[header_b64] = kid
        return self._check_grant(_json_object(payload_b64), kid, client_id, username, now)

    def _check_reference(
        self, token: str, client_id: str | None, username: str | None, now: float | None
    ) -> tuple[AccessClaims, str]:
        """An opaque token: its hash names claims the server kept when it issued it
        (a lookup by a hash of 256 random bits leaks nothing through timing)."""
        if _REFERENCE_RE.fullmatch(token) is None:
            raise TokenRejected(Reason.MALFORMED)
        try:
            found = self.store.reference(hashlib.sha256(token.encode("ascii")).hexdigest())
        except StoreUnavailable as exc:
            raise TokenRejected(Reason.UNAVAILABLE) from exc
        if found is None:
            raise TokenRejected(Reason.UNKNOWN_TOKEN)
        claims, kid = found
        return self._check_grant(claims, kid, client_id, username, now)

    def _check_device_signed(
        self, segments: list[str], client_id: str | None, now: float | None
    ) -> tuple[AccessClaims, str]:
        """A JWT the device signed itself with one of its credential keys (Cloud IoT
        Core's profile: `iat`, `exp` at most 24 h later, `aud` = the fleet's audience; no
        `kid`, `sub` or `jti`). Only the client id names the device; the username is not
        looked at. The `alg` must be the one of a registered key, never another."""
        header = _json_object(segments[0])
        alg = header.get("alg")
        if client_id is None or "crit" in header or header.get("typ", "JWT") != "JWT":
            raise TokenRejected(Reason.BAD_HEADER)
        device_id, long_form = device_of_client_id(client_id)
        if not is_device_id(device_id):
            raise TokenRejected(Reason.IDENTITY_MISMATCH)
        try:
            signer = self.store.signer(device_id)
        except StoreUnavailable as exc:
            raise TokenRejected(Reason.UNAVAILABLE) from exc
        if signer is None:
            raise TokenRejected(Reason.BAD_HEADER)  # a JWT of ours would have been at+jwt
        if long_form and not signer.iot_core_client_ids:
            raise TokenRejected(Reason.IDENTITY_MISMATCH)
        keys = [key for name, key in signer.keys if alg in jws.ALG_NAMES.get(name, (name,))]
        if not keys or not isinstance(alg, str):
            raise TokenRejected(Reason.BAD_HEADER)
        signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
        signature = _b64decode(segments[2])
        if not any(_verifies(alg, key, signing_input, signature) for key in keys):
            raise TokenRejected(Reason.BAD_SIGNATURE)
        claims = _json_object(segments[1])
        iat = self._check_device_claims(claims, signer, self.clock() if now is None else now)
        # No jti: one made of the signature names this token in caches and audit (the
        # deny list cannot reach it: revoking the device or its tokens does).
        jti = "ds-" + hashlib.sha256(signature).hexdigest()[:32]
        self._check_state(device_id, iat, jti)
        granted = {
            "iss": "device-signed",
            "sub": device_id,
            "client_id": device_id,
            "aud": claims["aud"],
            "iat": iat,
            "nbf": iat,
            "exp": claims["exp"],
            "jti": jti,
            "fleet": signer.fleet,
            "acl": {"pub": list(signer.pub), "sub": list(signer.sub)},
        }
        return cast(AccessClaims, granted), signer.kid

    def _check_device_claims(self, claims: dict[str, Any], signer: Signer, now: float) -> float:
        iat, exp, aud = claims.get("iat"), claims.get("exp"), claims.get("aud")
        if iat is None or exp is None or aud is None:
            raise TokenRejected(Reason.MISSING_CLAIM)
        if not (type(iat) in _NUMBER and type(exp) in _NUMBER):
            raise TokenRejected(Reason.BAD_CLAIM)
        leeway = self.policy.leeway
        if exp - iat > MAX_TOKEN_TTL + leeway:  # Cloud IoT Core: at most 24 h
            raise TokenRejected(Reason.BAD_CLAIM)
        if exp <= now - leeway:
            raise TokenRejected(Reason.EXPIRED)
        if iat > now + leeway:
            raise TokenRejected(Reason.NOT_YET_VALID)
        if aud != signer.audience and not (type(aud) is list and signer.audience in aud):
            raise TokenRejected(Reason.BAD_AUDIENCE)
        return float(iat)

    def _check_grant(
        self,
        claims: dict[str, Any],
        kid: str,
        client_id: str | None,
        username: str | None,
        now: float | None,
    ) -> tuple[AccessClaims, str]:
        self._check_claims(claims, kid, self.clock() if now is None else now)
        sub = claims["sub"]
        if (client_id is not None and client_id != sub) or (
            username is not None and username != sub
        ):
            raise TokenRejected(Reason.IDENTITY_MISMATCH)
        self._check_state(sub, claims["iat"], claims["jti"])
        return cast(AccessClaims, claims), kid

    def check_standing(self, *, device_id: str, kid: str, iat: float, jti: str) -> None:
        """Raise `TokenRejected` if a token verified earlier has lost its standing since:
        its signing key retired, its device disabled, revoked or deleted, itself revoked."""
        try:
            if self.store.signing_key(kid) is None:
                retired = self.store.retired_key(kid) is not None
                raise TokenRejected(Reason.KEY_RETIRED if retired else Reason.UNKNOWN_KID)
        except StoreUnavailable as exc:
            raise TokenRejected(Reason.UNAVAILABLE) from exc
        self._check_state(device_id, iat, jti)

    def _why_no_key(self, kid: str, signing_input: bytes, signature: bytes) -> Reason:
        """A token of a retired key is a real device's, not a guess: it should renew,
        and its refusal must not count against the address it shares with others."""
        try:
            retired = self.store.retired_key(kid)
        except StoreUnavailable:
            return Reason.UNAVAILABLE
        if retired is not None:
            try:
                jws.verify_es256(retired, signing_input, signature)
            except jws.JWSError:
                return Reason.BAD_SIGNATURE
            return Reason.KEY_RETIRED
        return Reason.UNKNOWN_KID

    def _check_claims(self, claims: dict[str, Any], kid: str, now: float) -> None:
        # Plain lookups and `type(...) in` tests: this runs on every CONNECT.
        try:
            exp, nbf, iat = claims["exp"], claims["nbf"], claims["iat"]
            sub, client_id, iss = claims["sub"], claims["client_id"], claims["iss"]
            aud, jti, acl = claims["aud"], claims["jti"], claims["acl"]
        except KeyError as exc:
            raise TokenRejected(Reason.MISSING_CLAIM) from exc
        if not (type(exp) in _NUMBER and type(nbf) in _NUMBER and type(iat) in _NUMBER):
            raise TokenRejected(Reason.BAD_CLAIM)  # bool is not a number here, unlike in Python
        if not (type(sub) is str and sub and type(jti) is str and jti):
            raise TokenRejected(Reason.BAD_CLAIM)
        leeway = self.policy.leeway
        if exp <= now - leeway:
            raise TokenRejected(Reason.EXPIRED)
        if nbf > now + leeway or iat > now + leeway:
            raise TokenRejected(Reason.NOT_YET_VALID)
        if iss != self.policy.issuer:
            raise TokenRejected(Reason.BAD_ISSUER)
        if aud != self.policy.audience and not (type(aud) is list and self.policy.audience in aud):
            raise TokenRejected(Reason.BAD_AUDIENCE)
        # The kid names the device whose key signed: a token for one device can never
        # be passed off as another's, whatever its claims say.
        if client_id != sub or kid[: kid.rindex("#")] != sub:
            raise TokenRejected(Reason.IDENTITY_MISMATCH)
        if not (
            type(acl) is dict and _is_str_list(acl.get("pub")) and _is_str_list(acl.get("sub"))
        ):
            raise TokenRejected(Reason.BAD_CLAIM)

    def _check_state(self, device_id: str, iat: float, jti: str) -> None:
        try:
            state = self.store.device_state(device_id)
            revoked = state is not None and self.store.is_jti_revoked(jti)
        except StoreUnavailable as exc:
            raise TokenRejected(Reason.UNAVAILABLE) from exc
        if state is None:
            raise TokenRejected(Reason.DEVICE_UNKNOWN)
        if state.status == "revoked":
            raise TokenRejected(Reason.DEVICE_REVOKED)
        if state.status != "active":
            raise TokenRejected(Reason.DEVICE_DISABLED)
        if iat < state.tokens_valid_after or revoked:
            raise TokenRejected(Reason.REVOKED)
