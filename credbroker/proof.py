"""Proof of possession on MQTT (README, Proof of possession on MQTT).

A device of a fleet with `proof_of_possession: true` sends as its MQTT password
`<access token>~<proof JWT>` (the `~` joins them as SD-JWT's key binding does; neither a
JWS nor a `cbr_` reference token contains one). The proof is signed by the credential
key whose RFC 7638 thumbprint is the token's `cnf.jkt`, with the algorithm registered
for that key (never the header's choice of key type, RFC 8725 section 2.1):

    header {"typ": "pop+jwt", "alg": the key's}
    claims ath = base64url(SHA-256(access token)) (RFC 9449 section 4.2), iat within
           WINDOW seconds of now (plus the leeway), jti (single use), aud = the broker's
           audience (the `aud` of every token it accepts)

A stolen token is then useless without the device's private key, and a proof seen on
the wire is good for one CONNECT, with that token only, for about two minutes.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable
from typing import Any

import orjson

from credbroker import jws
from credbroker.verifier import Reason, TokenRejected

SEPARATOR = "~"
PROOF_TYP = "pop+jwt"
WINDOW = 60  # seconds an iat may be away from now, besides the verifier's leeway
MAX_JTI_CHARS = 128
MAX_REPLAY_ENTRIES = 200_000  # at most ~40 MB; about 1,300 PoP CONNECTs a second


def split(password: str) -> tuple[str, str | None]:
    """The token and the proof of a password; None when there is no proof."""
    token, separator, proof = password.partition(SEPARATOR)
    return token, (proof if separator else None)


def ath(token: str) -> str:
    """RFC 9449 section 4.2: the hash of the access token the proof goes with."""
    return jws.b64url_encode(hashlib.sha256(token.encode("ascii")).digest())


class ReplayCache:
    """Proofs seen, each kept until its iat leaves the window (then it is refused
    anyway). In memory, per process: see README for what that means for the hooks."""

    def __init__(self, max_entries: int = MAX_REPLAY_ENTRIES) -> None:
        self.max_entries = max_entries
        self._until: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []  # a heap of (until, key)

    def first_use(self, key: str, until: float, now: float) -> bool:
        """Remember `key` until `until`; False if it was seen before. Fails closed
        (UNAVAILABLE: the device backs off and retries) when full of live proofs."""
        while self._expiry and self._expiry[0][0] < now:
            _, old = heapq.heappop(self._expiry)
            if self._until.get(old, now) < now:
                del self._until[old]
        if key in self._until:
            return False
        if len(self._until) >= self.max_entries:
            raise TokenRejected(Reason.UNAVAILABLE)
        self._until[key] = until
        heapq.heappush(self._expiry, (until, key))
        return True


class ProofChecker:
    """Args:
    audience: what a proof's `aud` must be (the verifier's audience).
    leeway: seconds of clock skew allowed besides WINDOW.
    clock: seconds since the epoch.
    """

    def __init__(self, audience: str, leeway: int, clock: Callable[[], float] = time.time) -> None:
        self.audience = audience
        self.leeway = leeway
        self.clock = clock
        self.replays = ReplayCache()

    def check(
        self, proof: str, *, token: str, jkt: str, key: tuple[str, jws.PublicKey] | None
    ) -> None:
        """Raise `TokenRejected` unless `proof` is a fresh, unused proof for `token`,
        signed by `key` (the device's credential key of thumbprint `jkt`, with its alg)."""
        if key is None or len(proof) > jws.MAX_TOKEN_CHARS or not proof.isascii():
            raise TokenRejected(Reason.BAD_PROOF)
        segments = proof.split(".")
        if len(segments) != 3:
            raise TokenRejected(Reason.BAD_PROOF)
        registered, public = key
        header = _proof_object(segments[0])
        alg = header.get("alg")
        if (
            header.get("typ") != PROOF_TYP
            or "crit" in header
            or not isinstance(alg, str)
            or alg not in jws.ALG_NAMES.get(registered, (registered,))
        ):
            raise TokenRejected(Reason.BAD_PROOF)
        try:
            signature = jws.b64url_decode(segments[2])
            signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
            jws.verify_signature(alg, public, signing_input, signature)
        except jws.JWSError as exc:
            raise TokenRejected(Reason.BAD_PROOF) from exc
        self._check_claims(_proof_object(segments[1]), token, jkt)

    def _check_claims(self, claims: dict[str, Any], token: str, jkt: str) -> None:
        iat, jti, aud = claims.get("iat"), claims.get("jti"), claims.get("aud")
        now = self.clock()
        window = WINDOW + self.leeway
        if (
            claims.get("ath") != ath(token)
            or type(iat) not in (int, float)
            or abs(now - iat) > window  # type: ignore[operator]
            or not (type(jti) is str and 0 < len(jti) <= MAX_JTI_CHARS)
            or not (aud == self.audience or (type(aud) is list and self.audience in aud))
        ):
            raise TokenRejected(Reason.BAD_PROOF)
        if not self.replays.first_use(f"{jkt} {jti}", iat + window, now):  # type: ignore[operator]
            raise TokenRejected(Reason.PROOF_REPLAYED)


def _proof_object(segment: str) -> dict[str, Any]:
    try:
        value = orjson.loads(jws.b64url_decode(segment))
    except (jws.JWSError, orjson.JSONDecodeError) as exc:
        raise TokenRejected(Reason.BAD_PROOF) from exc
    if not isinstance(value, dict):
        raise TokenRejected(Reason.BAD_PROOF)
    return value
