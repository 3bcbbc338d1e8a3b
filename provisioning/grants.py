"""`POST /oauth2/token`: the three grants of DESIGN.md, RFC 6749 errors.

- client_credentials, the client authenticated by a method of `clientauth`:
  private_key_jwt (RFC 7523 section 2.2), client_secret_basic / client_secret_post
  (RFC 6749 section 2.3.1)
- refresh_token with rotation; a reused token kills its family (RFC 9700 section 4.14)

A request may carry a DPoP proof (RFC 9449, `dpop`): a family granted with one is bound
to its key, and a refresh of a bound family without a proof by that key is refused as
`invalid_grant` before anything else about the token is looked at (section 5), so that
a copy of the token can neither refresh nor, by replaying a spent one, kill the family.
A private_key_jwt device signs its proofs with one of its credential keys.

Grants are registered in `GRANTS`, which the metadata document reads too.

Every issuance and refusal is audited; refusals count against the client and the
address, and past the limit the endpoint answers 429 before any crypto runs
(`attempts`). One unit of work per grant, plain SQL (`grantstore`): this is the hot path. On the
embedded database the grants of one turn of the event loop share a transaction
(`groupcommit`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlmodel import Session

from provisioning import attempts, clientauth, dpop, hashing, standing
from provisioning.dpop import Proof
from provisioning.errors import (
    DeadGrant,
    InvalidClient,
    InvalidDpopProof,
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    UnsupportedGrantType,
)
from provisioning.grantstore import GrantStore, Origin, RefreshState
from provisioning.models import RefreshFamily
from provisioning.models.devices import DeviceCreate
from provisioning.services import Services
from provisioning.store import devices, revocations
from provisioning.tokens import Issued, issue


def token(
    services: Services,
    form: Mapping[str, str],
    authorization: str | None,
    address: str,
    user_agent: str | None = None,
    certificate: x509.Certificate | None = None,
    dpop_headers: Sequence[str] = (),
) -> Issued:
    """`certificate`: the TLS client certificate the handshake verified, if any."""
    presented = clientauth.Presented(form, authorization, certificate)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
    attempt = attempts.counted(
        services,
        action=f"token.{grant_type}",
        label=grant_type,
        client=clientauth.claimed_client(presented),
        address=address,
        costly=grant_type == "client_credentials" and clientauth.costly(presented),
    )
    timer = services.metrics.token_seconds.labels(grant_type).time()
    with attempt, timer, _store(services, Origin.of(address, user_agent)) as store:
        proof = dpop.verify(
            store, dpop_headers, method="POST", policy=services.dpop_policy, now=services.now()
        )
        issued = grant(services, store, presented, proof)
    services.metrics.tokens.labels(grant_type, "issued").inc()
    return issued


class _RefuseAfterCommit(Exception):
    """A refusal whose writes must stand: the revocation of a reused refresh family."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.detail)
        self.error = error


@contextmanager
def _store(services: Services, origin: Origin) -> Iterator[GrantStore]:
    """One unit of work (`groupcommit`): kept on success and on `_RefuseAfterCommit`, its
    held-back writes sent first (`GrantStore.flush`); the changes of standing it made
    are announced once it has committed."""
    refusal = None
    with services.commits.unit() as unit:
        store = GrantStore(unit.conn, unit.changes, origin)
        try:
            yield store
        except _RefuseAfterCommit as exc:
            refusal = exc.error
            store.flush()
        else:
            store.flush()
        finally:
            store.close()
    if refusal is not None:
        raise refusal


def _client_credentials(
    services: Services, store: GrantStore, presented: clientauth.Presented, proof: Proof | None
) -> Issued:
    now = services.now()
    try:
        authenticated = clientauth.authenticate(
            store, presented, policy=services.assertion_policy, now=now
        )
    except clientauth.RegisterFirst as first:
        _register(services, store, first, now)
        authenticated = clientauth.authenticate(
            store, presented, policy=services.assertion_policy, now=now
        )
    if authenticated is None:
        raise InvalidClient("client authentication is required")
    client = authenticated.client
    if (
        proof is not None
        and authenticated.jkt  # a key device (assertion or certificate), not a secret one
        and not _registered(store, client.device_id, proof, now)
    ):
        raise InvalidDpopProof("DPoP proof must be signed by a credential key of the device")
    issued = issue(
        keyring=services.keyring,
        store=store,
        client=client,
        jkt=authenticated.jkt,
        now=now,
        issuer=services.issuer,
        audience=services.settings.audience,
        family_lifetime=services.settings.refresh_family_lifetime,
        x5t=authenticated.x5t,
        dpop_jkt=proof.jkt if proof else None,
    )
    method = authenticated.method if authenticated.x5t else None
    store.audit(
        now=now,
        action="token.issue",
        device_id=client.device_id,
        jti=issued.jti,
        method=method or ("private_key_jwt" if authenticated.jkt else "client_secret"),
        **({"dpop_jkt": proof.jkt} if proof else {}),
    )
    return issued


def _register(
    services: Services, store: GrantStore, first: clientauth.RegisterFirst, now: int
) -> None:
    """Just-in-time registration: the first contact of a certificate from a CA of a fleet
    with `auto_register` creates its device, the certificate its credential, in the
    grant's transaction (a refused grant creates nothing)."""
    pem = first.certificate.public_bytes(serialization.Encoding.PEM).decode()
    with Session(bind=store.conn, info={standing.PENDING: store.changes}) as session:
        devices.create_device(
            session=session,
            keyring=services.keyring,
            device_create=DeviceCreate(
                device_id=first.device_id, fleet=first.fleet, public_key=pem
            ),
            now=now,
            actor="auto_register",
            max_metadata_bytes=services.settings.max_metadata_bytes,
            enrollment_ttl=services.settings.enrollment_token_ttl,
        )
        session.flush()


def _registered(store: GrantStore, device_id: str, proof: Proof, now: int) -> bool:
    """Whether the proof's key is a live credential key of the device: a device with
    keys binds its family to one of them, never to a key someone else brings."""
    return any(kid == proof.jkt for kid, _, _ in store.credential_keys(device_id, now))


def _refresh(
    services: Services, store: GrantStore, request: clientauth.Presented, proof: Proof | None
) -> Issued:
    """RFC 6749 section 6. Client authentication sent along (authlib does) is ignored:
    the refresh token is the credential, bound to its device below."""
    form = request.form
    now = services.now()
    presented = form.get("refresh_token")
    if not presented:
        raise InvalidRequest("refresh_token is required")
    digest = hashing.token_hash(presented)
    state = store.refresh_state(digest)
    if state is None:
        raise InvalidGrant("unknown refresh token")  # no family: no device to name
    try:
        return _rotate(services, store, request, state, digest, now, proof)
    except (OAuthError, _RefuseAfterCommit) as exc:
        # The token is known, so its refusal is about its device (theft shows there).
        refusal = exc.error if isinstance(exc, _RefuseAfterCommit) else exc
        refusal.concerning(state.device_id, family=state.family_id)
        raise


def _rotate(
    services: Services,
    store: GrantStore,
    request: clientauth.Presented,
    state: RefreshState,
    digest: str,
    now: int,
    proof: Proof | None,
) -> Issued:
    """Spend a known refresh token once and issue the next pair of its family."""
    form = request.form
    if state.dpop_jkt is not None and (proof is None or proof.jkt != state.dpop_jkt):
        # RFC 9449 section 5: the binding "MUST be validated when the refresh token is
        # later presented". First, and not reuse: the family lives on for the device
        # that holds the key.
        which = "no DPoP proof" if proof is None else "a DPoP proof by another key"
        raise InvalidGrant(f"refresh token is bound to a DPoP key; got {which}")
    if state.family_revoked_at is not None:
        raise DeadGrant("refresh token was revoked")
    if state.x5t and clientauth.thumbprint_of(request.certificate) != state.x5t:
        # Before the token is spent: whoever copied it without the device's
        # certificate can neither use it nor, by reusing it, kill the device's family.
        raise InvalidGrant("this refresh token is bound to a client certificate (RFC 8705)")
    if state.used_at is not None or not store.mark_used(digest, now):
        _revoke_family(store, state.family_id, now)
        raise _RefuseAfterCommit(
            InvalidGrant("refresh token was already used; its family is revoked")
        )
    if state.family_expires_at <= now:
        raise DeadGrant("refresh token family has expired; authenticate again")
    if form.get("client_id", state.device_id) != state.device_id:
        raise InvalidGrant("refresh token was issued to another client")
    client = store.client(state.device_id)
    if client is None or client.status != "active":
        raise DeadGrant("device is not active")
    if (
        proof is not None
        and state.dpop_jkt is not None
        and client.auth_method == "private_key_jwt"
        and not _registered(store, client.device_id, proof, now)
    ):  # a credential key removed from the device refreshes its families no more
        raise DeadGrant("the family's DPoP key is no longer a credential key of the device")
    issued = issue(
        keyring=services.keyring,
        store=store,
        client=client,
        jkt=state.jkt,
        now=now,
        issuer=services.issuer,
        audience=services.settings.audience,
        family_id=state.family_id,
        x5t=state.x5t,
    )
    store.audit(
        now=now,
        action="token.refresh",
        device_id=client.device_id,
        jti=issued.jti,
        family=state.family_id,
    )
    return issued


def _revoke_family(store: GrantStore, family_id: str, now: int) -> None:
    """RFC 9700 section 4.14: reuse means theft; kill the family, in this transaction."""
    # The session joins the grant's transaction; its changes go out with the grant's.
    with Session(bind=store.conn, info={standing.PENDING: store.changes}) as session:
        family = session.get(RefreshFamily, family_id)
        if family is not None and family.revoked_at is None:
            revocations.revoke_family(
                session=session, family=family, now=now, reason="refresh_reuse"
            )
        session.flush()


Grant = Callable[[Services, GrantStore, clientauth.Presented, Proof | None], Issued]
# The grant types, by RFC 6749 name: the token endpoint dispatches on it and the
# metadata's grant_types_supported lists it. A new grant is a function and one line.
GRANTS: dict[str, Grant] = {
    "client_credentials": _client_credentials,
    "refresh_token": _refresh,
}
