"""The one decision: may this client connect, and then publish or subscribe?

Every enforcement point asks it: the embedded and standalone brokers, each broker hook
and introspection. Each is an edge that turns the neutral answer into its own protocol
(a 3.1.1 CONNACK code in broker/connack.py, a hook's allow or deny).

    Refusal.kind
    ├── BAD_CREDENTIALS  malformed, expired, bad signature, wrong binding
    ├── NOT_AUTHORIZED   device disabled, revoked or unknown; token revoked
    ├── UNAVAILABLE      the trust store cannot answer: keep the credentials, retry
    └── TRY_LATER        a failure under a penalty: back off, retry with the same token

A fleet with `proof_of_possession` also wants a fresh proof signed by the token's
`cnf.jkt` key in the password (`credbroker.proof`); only at CONNECT, never in the
re-checks of standing. A proof sent to a fleet without it is checked all the same.

Certificate login (README, Certificates as device credentials): a CONNECT with no
password, username = client id = device id, on a connection whose client certificate
the TLS handshake verified, is a login when the device's fleet sets `certificate_login`
and the certificate is the device's (`certificates.names_device`). Its grant is the
device's ACL until the certificate's notAfter; its jti (`x5t-` and the thumbprint), kid
(the device's signing key) and iat (the CONNECT) make it follow the device's standing as
a token's grant does, and the certificate is checked again at each re-check, so that
removing its credential key or the fleet's CA, or turning the flag off, ends the session
too.

Penalties never stand between a valid token and a connection: knowing a device id must
not be enough to keep that device offline. A token is always verified; what a penalty
changes is the answer to a failure that looks like guessing (TRY_LATER, not "your
credentials are bad") and its cost (the edges do not audit those one by one).
"""

from __future__ import annotations

import enum
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from credbroker import certificates
from credbroker import proof as proof_
from credbroker.claims import CERTIFICATE_CONFIRMATION, AccessClaims, is_device_id
from credbroker.topics import any_contains, any_matches, is_valid_filter, is_valid_topic
from credbroker.verifier import (
    CertificateHolder,
    Reason,
    StoreUnavailable,
    TokenRejected,
    Verifier,
)


class Kind(enum.Enum):
    BAD_CREDENTIALS = "bad_credentials"
    NOT_AUTHORIZED = "not_authorized"
    UNAVAILABLE = "unavailable"
    TRY_LATER = "try_later"


_KINDS = {
    "credentials": Kind.BAD_CREDENTIALS,
    "standing": Kind.NOT_AUTHORIZED,
    "unavailable": Kind.UNAVAILABLE,
}


def kind_of(reason: Reason) -> Kind:
    return _KINDS[reason.denies]


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified CONNECT may do, kept with the connection: no decoding after this.

    `kid` and `iat` let the grant's standing be checked again after a change (a
    disabled device, a retired signing key) without the token itself."""

    device_id: str
    jti: str
    kid: str
    iat: float
    exp: float  # the token's exp plus the leeway (a certificate's notAfter): the end
    pub: tuple[str, ...]
    sub: tuple[str, ...]
    # The client certificate of a certificate login, checked again with the standing.
    certificate: x509.Certificate | None = None

    def may_publish(self, topic: str) -> bool:
        return is_valid_topic(topic) and any_matches(self.pub, topic)

    def may_subscribe(self, topic_filter: str) -> bool:
        return is_valid_filter(topic_filter) and any_contains(self.sub, topic_filter)


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: Kind
    reason: Reason


Key = tuple[str, str]  # ("client", client id) or ("addr", address)
PENALTY_START = 1.0
# Many devices may share one NAT address: an address gets more free failures and a
# longer penalty than a client id.
FREE_FAILURES = {"addr": 20, "client": 5}
PENALTY_MAX = {"addr": 60.0, "client": 10.0}
FORGET_AFTER = 300.0  # a key quiet this long starts again from zero
_MAX_TRACKED = 50_000


class PenaltyBox:
    """Failures per key, with a penalty interval that doubles after a few free ones."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[int, float]] = OrderedDict()

    def penalized(self, *keys: Key) -> bool:
        now = self._clock()
        return any(self._entries.get(key, (0, 0.0))[1] > now for key in keys)

    def failed(self, *keys: Key) -> None:
        now = self._clock()
        for key in keys:
            failures, until = self._entries.pop(key, (0, 0.0))
            failures = 1 if now - until > FORGET_AFTER else failures + 1
            free, wait = FREE_FAILURES[key[0]], 0.0
            if failures > free:
                wait = min(PENALTY_START * 2 ** (failures - free - 1), PENALTY_MAX[key[0]])
            self._entries[key] = (failures, now + wait)
        while len(self._entries) > _MAX_TRACKED:
            self._entries.popitem(last=False)

    def succeeded(self, client_id: str) -> None:
        self._entries.pop(("client", client_id), None)


class Authenticator:
    """Args:
    verifier: the one token verifier.
    leeway: seconds a connection may outlive its token's `exp`.
    """

    def __init__(self, verifier: Verifier, leeway: int) -> None:
        self.verifier = verifier
        self.leeway = leeway
        self.penalties = PenaltyBox()
        self.proofs = proof_.ProofChecker(verifier.policy.audience, leeway, verifier.clock)

    def authenticate(
        self,
        *,
        client_id: str | None,
        username: str | None,
        password: str | None,
        address: str | None,
        certificate: str | None = None,
        client_certificate: bytes | None = None,
    ) -> Grant | Refusal:
        """Decide a CONNECT. `address` is the client's, when the edge knows it (a hook
        called by a broker knows only what the broker reports, never its own peer);
        `certificate` the `x5t#S256` of the connection's verified client certificate,
        which a certificate-bound token (RFC 8705 section 3) needs: without it, or with
        another, the token is refused. `client_certificate`, the DER of that
        certificate, is what a certificate login (no password) is decided on; an edge
        that does not pass it refuses passwordless CONNECTs, as before."""
        keys: list[Key] = [("addr", address)] if address else []
        if client_id:
            keys.append(("client", client_id))
        penalized = self.penalties.penalized(*keys)
        if password is None and client_certificate is not None and client_id and username:
            return self._certificate_login(keys, penalized, client_id, username, client_certificate)
        if not client_id or not username or not password:
            return self._failed(keys, penalized, Reason.MISSING_CREDENTIALS)
        token, proof = proof_.split(password)
        try:
            claims, kid = self.verifier.check(token, client_id=client_id, username=username)
            if not _bound_to(claims, certificate):
                raise TokenRejected(Reason.CERTIFICATE_MISMATCH)
            self._check_possession(claims, token, proof)
        except TokenRejected as exc:
            if exc.reason is Reason.UNAVAILABLE:
                return Refusal(Kind.UNAVAILABLE, exc.reason)
            return self._failed(keys, penalized, exc.reason)
        self.penalties.succeeded(client_id)
        return grant_from(claims, kid, self.leeway)

    def _certificate_login(
        self, keys: list[Key], penalized: bool, client_id: str, username: str, der: bytes
    ) -> Grant | Refusal:
        now = int(self.verifier.clock())
        try:
            certificate = certificates.load_der(der)
            if username != client_id or not is_device_id(client_id):
                raise TokenRejected(Reason.IDENTITY_MISMATCH)
            holder = self._holder_of(client_id, certificate, now)
            jti = "x5t-" + certificates.thumbprint(der)
            self.verifier.check_standing(device_id=client_id, kid=holder.kid, iat=now, jti=jti)
        except certificates.CertificateError:
            return self._failed(keys, penalized, Reason.CERTIFICATE_REFUSED)
        except TokenRejected as exc:
            if exc.reason is Reason.UNAVAILABLE:
                return Refusal(Kind.UNAVAILABLE, exc.reason)
            return self._failed(keys, penalized, exc.reason)
        self.penalties.succeeded(client_id)
        return Grant(
            device_id=client_id,
            jti=jti,
            kid=holder.kid,
            iat=now,
            exp=certificate.not_valid_after_utc.timestamp(),
            pub=holder.pub,
            sub=holder.sub,
            certificate=certificate,
        )

    def _holder_of(
        self, device_id: str, certificate: x509.Certificate, now: float
    ) -> CertificateHolder:
        """The device, if its fleet allows certificate logins and the certificate is its."""
        try:
            holder = self.verifier.store.certificate_holder(device_id)
        except StoreUnavailable as exc:
            raise TokenRejected(Reason.UNAVAILABLE) from exc
        if holder is None or not certificates.names_device(
            certificate, device_id, registered=holder.registered, cas=holder.cas, now=now
        ):
            raise TokenRejected(Reason.CERTIFICATE_REFUSED)
        return holder

    def _check_possession(self, claims: AccessClaims, token: str, proof: str | None) -> None:
        store, device_id = self.verifier.store, claims["sub"]
        try:
            if proof is None:
                if store.proof_required(device_id):
                    raise TokenRejected(Reason.PROOF_REQUIRED)
                return
            cnf = claims.get("cnf")
            jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
            if not isinstance(jkt, str):  # a secret device's token, or a device-signed one
                raise TokenRejected(Reason.BAD_PROOF)
            key = store.proof_key(device_id, jkt)
        except StoreUnavailable as exc:
            raise TokenRejected(Reason.UNAVAILABLE) from exc
        self.proofs.check(proof, token=token, jkt=jkt, key=key)

    def _failed(self, keys: list[Key], penalized: bool, reason: Reason) -> Refusal:
        # A token whose signature verified is a real device's (late, or cut off), not a
        # guess: it counts against the client id only (a refresh storm behind one NAT
        # address must not lock the address out), and is told the truth even under a
        # penalty, so that the device renews its token instead of waiting.
        if reason.signed:
            self.penalties.failed(*(k for k in keys if k[0] == "client"))
            return Refusal(kind_of(reason), reason)
        self.penalties.failed(*keys)
        return Refusal(Kind.TRY_LATER if penalized else kind_of(reason), reason)

    def standing(self, grant: Grant) -> Refusal | None:
        """Whether a grant made earlier still stands; no penalties, the token was real."""
        try:
            self.verifier.check_standing(
                device_id=grant.device_id, kid=grant.kid, iat=grant.iat, jti=grant.jti
            )
            if grant.certificate is not None:
                now = self.verifier.clock()
                self._holder_of(grant.device_id, grant.certificate, now)
        except TokenRejected as exc:
            return Refusal(kind_of(exc.reason), exc.reason)
        return None


def _bound_to(claims: AccessClaims, certificate: str | None) -> bool:
    """Whether a token may be used on a connection with this client certificate: any
    connection unless the token is certificate-bound, then only one with its own."""
    cnf = claims.get("cnf")
    bound = cnf.get(CERTIFICATE_CONFIRMATION) if type(cnf) is dict else None
    if bound is None:
        return True
    return certificate is not None and hmac.compare_digest(str(bound), certificate)


def grant_from(claims: AccessClaims, kid: str, leeway: int) -> Grant:
    return Grant(
        device_id=claims["sub"],
        jti=claims["jti"],
        kid=kid,
        iat=float(claims["iat"]),
        exp=float(claims["exp"]) + leeway,
        pub=tuple(claims["acl"]["pub"]),
        sub=tuple(claims["acl"]["sub"]),
    )
