"""`POST /oauth2/token`: the three grants of DESIGN.md, RFC 6749 errors.

- client_credentials + private_key_jwt (RFC 7523 section 2.2, client authentication)
- client_credentials + client_secret_basic / client_secret_post (RFC 6749 section 2.3.1)
- refresh_token with rotation; a reused token kills its family (RFC 9700 section 4.14)

Every issuance and refusal is audited; refusals count against the client and the
address, and past the limit the endpoint answers 429 before any crypto runs. One
transaction per grant, in Core (`grantstore`): this is the hot path.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from urllib.parse import unquote

from sqlmodel import Session

from credbroker.claims import is_device_id
from provisioning import assertions, hashing, standing
from provisioning.errors import (
    DeadGrant,
    InactiveClient,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    TooManyAttempts,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from provisioning.grantstore import Client, GrantStore
from provisioning.models import RefreshFamily
from provisioning.services import Services
from provisioning.store import audit, revocations
from provisioning.tokens import Issued, issue

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def token(
    services: Services, form: Mapping[str, str], authorization: str | None, address: str
) -> Issued:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    if grant_type not in ("client_credentials", "refresh_token"):
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
    client = _claimed_client(form, authorization)
    keys = (("client", client), ("addr", address)) if client else (("addr", address),)
    retry = services.limiter.retry_after(*keys)
    if retry and _secret_grant(form, authorization) and services.limiter.retry_after(keys[-1]):
        # A client secret costs an argon2 verification (~50 ms): an address past its
        # limit gets none checked. Anything cheap to check still is (below).
        services.metrics.tokens.labels(grant_type, "throttled").inc()
        raise TooManyAttempts(retry)
    try:
        with services.metrics.token_seconds.labels(grant_type).time(), _store(services) as store:
            if grant_type == "refresh_token":
                issued = _refresh(services, store, form)
            else:
                issued = _client_credentials(services, store, form, authorization)
    except OAuthError as exc:
        _refused(services, exc, grant_type, client, keys, address, penalized=bool(retry))
        if retry and not isinstance(exc, InactiveClient | DeadGrant):
            # A penalty never stands between a verified credential and its token (a
            # device id is public: junk naming it must not lock the device out); what
            # failed under one is told to come back later.
            services.metrics.tokens.labels(grant_type, "throttled").inc()
            raise TooManyAttempts(retry, exc.error) from exc
        raise
    services.metrics.tokens.labels(grant_type, "issued").inc()
    return issued


def _refused(
    services: Services,
    exc: OAuthError,
    grant_type: str,
    client: str | None,
    keys: tuple[tuple[str, str], ...],
    address: str,
    *,
    penalized: bool,
) -> None:
    """Count a refusal, and audit it unless it came under a penalty (a flood of junk
    must not turn into a flood of writes: it shows in the metrics)."""
    services.metrics.tokens.labels(grant_type, exc.error).inc()
    # Real but dead credentials (a revoked device, a revoked family) are not guesses:
    # they count against the device, not the address many devices may share.
    genuine = isinstance(exc, InactiveClient | DeadGrant)
    services.limiter.failed(*(k for k in keys if not (genuine and k[0] == "addr")))
    if penalized and not genuine:
        return
    with services.transaction() as session:
        audit.record(
            session=session,
            now=services.now(),
            action=f"token.{grant_type}",
            outcome="refused",
            device_id=client,
            error=exc.error,
            reason=exc.detail,
            address=address,
        )


def _secret_grant(form: Mapping[str, str], authorization: str | None) -> bool:
    return form.get("grant_type") == "client_credentials" and "client_assertion" not in form


class _RefuseAfterCommit(Exception):
    """A refusal whose writes must stand: the revocation of a reused refresh family."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.detail)
        self.error = error


@contextmanager
def _store(services: Services) -> Iterator[GrantStore]:
    """One transaction: committed on success and on `_RefuseAfterCommit`; the changes of
    standing it made are announced once it has committed."""
    refusal = None
    with services.engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        store = GrantStore(conn)
        try:
            yield store
        except _RefuseAfterCommit as exc:
            refusal = exc.error
    services.bus.publish(store.changes)
    if refusal is not None:
        raise refusal


def _claimed_client(form: Mapping[str, str], authorization: str | None) -> str | None:
    """Who the request says it is, unverified: for rate limiting and audit only."""
    candidates = [form.get("client_id")]
    if "client_assertion" in form:
        candidates.append(assertions.claimed_device(form["client_assertion"]))
    if authorization:
        with suppress(InvalidClient):
            candidates.append(_basic(authorization)[0])
    return next((c for c in candidates if c and is_device_id(c)), None)


def _basic(authorization: str) -> tuple[str, str]:
    """RFC 6749 section 2.3.1: form-urlencoded id and secret inside HTTP Basic."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("only HTTP Basic client authentication is accepted here")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidClient("malformed HTTP Basic credentials") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed HTTP Basic credentials")
    return unquote(client_id), unquote(secret)


def _client_credentials(
    services: Services, store: GrantStore, form: Mapping[str, str], authorization: str | None
) -> Issued:
    now = services.now()
    if "client_assertion" in form:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise InvalidRequest(f"client_assertion_type must be {JWT_BEARER}")
        device_id = assertions.claimed_device(form["client_assertion"])
        if device_id is None or form.get("client_id", device_id) != device_id:
            raise InvalidClient("client assertion does not name a device")
        client = _active_client(store, device_id, "private_key_jwt")
        jkt = assertions.verify_assertion(
            store=store,
            assertion=form["client_assertion"],
            device_id=device_id,
            policy=services.assertion_policy,
            now=now,
        )
    else:
        device_id, secret = _secret_credentials(form, authorization)
        found = store.client(device_id) if is_device_id(device_id) else None
        if not hashing.verify_secret(found.client_secret_hash if found else None, secret):
            raise InvalidClient("unknown client or wrong secret")
        client = _active_client(store, device_id, "client_secret")
        if not client.allow_client_secret:
            raise UnauthorizedClient("this fleet does not allow client secrets")
        jkt = ""
    issued = issue(
        keyring=services.keyring,
        store=store,
        client=client,
        jkt=jkt,
        now=now,
        issuer=services.issuer,
        audience=services.settings.audience,
        family_lifetime=services.settings.refresh_family_lifetime,
    )
    store.audit(
        now=now,
        action="token.issue",
        device_id=device_id,
        jti=issued.jti,
        method="private_key_jwt" if jkt else "client_secret",
    )
    return issued


def _secret_credentials(form: Mapping[str, str], authorization: str | None) -> tuple[str, str]:
    if authorization:
        if "client_secret" in form:
            raise InvalidRequest("use one client authentication method, not two")
        return _basic(authorization)
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    raise InvalidClient("client authentication is required")


def _active_client(store: GrantStore, device_id: str, method: str) -> Client:
    client = store.client(device_id)
    if client is None or client.auth_method != method:
        raise InvalidClient("unknown client or wrong authentication method")
    if client.status != "active":
        raise InactiveClient(f"device is {client.status}")
    return client


def _refresh(services: Services, store: GrantStore, form: Mapping[str, str]) -> Issued:
    now = services.now()
    presented = form.get("refresh_token")
    if not presented:
        raise InvalidRequest("refresh_token is required")
    digest = hashing.token_hash(presented)
    state = store.refresh_state(digest)
    if state is None:
        raise InvalidGrant("unknown refresh token")
    if state.family_revoked_at is not None:
        raise DeadGrant("refresh token was revoked")
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
    issued = issue(
        keyring=services.keyring,
        store=store,
        client=client,
        jkt=state.jkt,
        now=now,
        issuer=services.issuer,
        audience=services.settings.audience,
        family_id=state.family_id,
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
