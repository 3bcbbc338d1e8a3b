"""Client authentication (RFC 6749 section 2.3): one registry of methods for the token
and revocation endpoints, and the metadata lists its names (RFC 8414 section 2).

- private_key_jwt (RFC 7523 section 2.2): `client_assertion` signed by a credential key
- client_secret_basic (RFC 6749 section 2.3.1): form-urlencoded id and secret in Basic
- client_secret_post (the same section): `client_id` and `client_secret` in the form
- tls_client_auth and self_signed_tls_client_auth (RFC 8705 section 2): `client_id` in
  the form and, on the TLS connection, a client certificate that the handshake verified
  (against `--client-ca`) and that is registered as one of the device's credential keys
  (`x5t#S256` of its JWK); the first for a CA's certificate, the second for a
  self-signed one

A request uses one method at most (section 2.3: the client "MUST NOT use more than
one authentication method in each request"). A new method is a function and one line
in `METHODS`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509

from credbroker import certificates
from credbroker import jwk as jwk_
from credbroker.claims import is_device_id
from provisioning import assertions, hashing
from provisioning.assertions import AssertionPolicy
from provisioning.errors import (
    InactiveClient,
    InvalidClient,
    InvalidRequest,
    UnauthorizedClient,
)
from provisioning.grantstore import Client, GrantStore

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
Form = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Presented:
    """What a request presents to authenticate its client."""

    form: Form
    authorization: str | None = None
    certificate: x509.Certificate | None = None  # the TLS client certificate, verified


@dataclass(frozen=True, slots=True)
class Authenticated:
    client: Client
    method: str  # a name of `METHODS`
    jkt: str  # RFC 7638 thumbprint of the proven credential key; "" for a secret
    x5t: str = ""  # `x5t#S256` of the client certificate, for mTLS methods (RFC 8705)


def _private_key_jwt(
    store: GrantStore, presented: Presented, policy: AssertionPolicy, now: int
) -> Authenticated:
    form = presented.form
    if form.get("client_assertion_type") != JWT_BEARER:
        raise InvalidRequest(f"client_assertion_type must be {JWT_BEARER}")
    device_id = assertions.claimed_device(form["client_assertion"])
    if device_id is None or form.get("client_id", device_id) != device_id:
        raise InvalidClient("client assertion does not name a device")
    client = _active_client(store, device_id, "private_key_jwt", keys_at=now)
    jkt = assertions.verify_assertion(
        store=store,
        assertion=form["client_assertion"],
        device_id=device_id,
        policy=policy,
        now=now,
    )
    return Authenticated(client, "private_key_jwt", jkt)


def _client_secret_basic(
    store: GrantStore, presented: Presented, policy: AssertionPolicy, now: int
) -> Authenticated:
    device_id, secret = basic(presented.authorization or "")
    if presented.form.get("client_id", device_id) != device_id:
        raise InvalidClient("client_id does not match the HTTP Basic credentials")
    return _secret(store, device_id, secret, "client_secret_basic")


def _client_secret_post(
    store: GrantStore, presented: Presented, policy: AssertionPolicy, now: int
) -> Authenticated:
    form = presented.form
    if "client_id" not in form:
        raise InvalidClient("client_secret needs its client_id")
    return _secret(store, form["client_id"], form["client_secret"], "client_secret_post")


def _secret(store: GrantStore, device_id: str, secret: str, method: str) -> Authenticated:
    found = store.client(device_id) if is_device_id(device_id) else None
    if not hashing.verify_secret(found.client_secret_hash if found else None, secret):
        raise InvalidClient("unknown client or wrong secret")
    client = _active_client(store, device_id, "client_secret")
    if not client.allow_client_secret:
        raise UnauthorizedClient("this fleet does not allow client secrets")
    return Authenticated(client, method, "")


class RegisterFirst(Exception):
    """A certificate of a fleet CA with `auto_register`, naming a device that does not
    exist yet: the grant creates it (just-in-time registration), then authenticates."""

    def __init__(self, fleet: str, device_id: str, certificate: x509.Certificate) -> None:
        super().__init__(device_id)
        self.fleet, self.device_id, self.certificate = fleet, device_id, certificate


def _tls_client_auth(
    store: GrantStore, presented: Presented, policy: AssertionPolicy, now: int
) -> Authenticated:
    """RFC 8705 section 2: the certificate the handshake verified is registered on the
    device (by its `x5t#S256`), or was issued by a CA of the device's fleet to the
    device (its subject CN); the method's name says which kind it is."""
    certificate, device_id = presented.certificate, presented.form.get("client_id", "")
    assert certificate is not None  # noqa: S101 - presented only with one
    if not is_device_id(device_id):
        raise InvalidClient("client_id must name the device of the certificate")
    x5t = thumbprint_of(certificate)
    method = _mtls_method(certificate)
    client = store.client(device_id, keys_at=now)
    if client is not None:
        for kid, _, jwk in store.credential_keys(device_id, now):
            if jwk.get("x5t#S256") == x5t:
                return Authenticated(_usable(client, "private_key_jwt"), method, kid, x5t)
    issuer = _issuing_ca(store, certificate, now)
    if issuer is None or certificates.common_name(certificate) != device_id:
        raise InvalidClient(
            "the client certificate is neither registered on this device nor issued to it "
            "by a CA of its fleet"
        )
    fleet, auto_register = issuer
    if client is None and auto_register:
        raise RegisterFirst(fleet, device_id, certificate)
    if client is None or client.fleet != fleet:
        raise InvalidClient("the certificate's CA is not one of this device's fleet")
    try:
        jkt = jwk_.thumbprint(jwk_.to_jwk(certificate.public_key()))  # type: ignore[arg-type]
    except (jwk_.JWKError, TypeError, AttributeError) as exc:
        raise InvalidClient("the certificate's key is not one credbroker accepts") from exc
    return Authenticated(_usable(client, "private_key_jwt"), method, jkt, x5t)


def _issuing_ca(
    store: GrantStore, certificate: x509.Certificate, now: int
) -> tuple[str, bool] | None:
    """(fleet, auto_register) of the fleet CA that issued a certificate valid now. A
    certificate of credbroker's own CA counts only while on record and not revoked,
    and for the device it was issued to (a deleted device's id may come back)."""
    found = store.fleet_cas(certificate.issuer.rfc4514_string())
    row = certificates.issuing_ca(certificate, ((r.certificate, r) for r in found), now)
    if row is None:
        return None
    if row.managed:
        device_id = store.issued_to(format(certificate.serial_number, "x"), row.id)
        if device_id is None or device_id != certificates.common_name(certificate):
            return None
    return row.fleet, row.auto_register and not row.managed


def thumbprint_of(certificate: x509.Certificate | None) -> str:
    """`x5t#S256` of a client certificate; "" without one."""
    if certificate is None:
        return ""
    return certificates.x5t(certificate)


def _mtls_method(certificate: x509.Certificate) -> str:
    if certificates.is_self_signed(certificate):
        return "self_signed_tls_client_auth"
    return "tls_client_auth"


def _active_client(
    store: GrantStore, device_id: str, auth_method: str, *, keys_at: int | None = None
) -> Client:
    return _usable(store.client(device_id, keys_at=keys_at), auth_method)


def _usable(client: Client | None, auth_method: str) -> Client:
    if client is None or client.auth_method != auth_method:
        raise InvalidClient("unknown client or wrong authentication method")
    if client.status != "active":
        raise InactiveClient(f"device is {client.status}")
    return client


Verify = Callable[[GrantStore, Presented, AssertionPolicy, int], Authenticated]


def _certificate_only(presented: Presented, self_signed: bool) -> bool:
    """A client certificate and no other credentials: a certificate on the connection
    does not make a client that authenticates otherwise use two methods."""
    form, certificate = presented.form, presented.certificate
    if certificate is None or presented.authorization is not None:
        return False
    if "client_assertion" in form or "client_secret" in form or "client_id" not in form:
        return False
    return certificates.is_self_signed(certificate) == self_signed


@dataclass(frozen=True)
class Method:
    name: str  # IANA "OAuth Token Endpoint Authentication Methods"
    presented: Callable[[Presented], bool]
    verify: Verify
    costly: bool  # an argon2 check (~50 ms): not run for an address past its limit


METHODS = (
    Method("private_key_jwt", lambda p: "client_assertion" in p.form, _private_key_jwt, False),
    Method(
        "client_secret_basic", lambda p: p.authorization is not None, _client_secret_basic, True
    ),
    Method("client_secret_post", lambda p: "client_secret" in p.form, _client_secret_post, True),
    Method("tls_client_auth", lambda p: _certificate_only(p, False), _tls_client_auth, False),
    Method(
        "self_signed_tls_client_auth",
        lambda p: _certificate_only(p, True),
        _tls_client_auth,
        False,
    ),
)
NAMES = [method.name for method in METHODS]


def presented(request: Presented) -> Method | None:
    """The method the request uses, if any."""
    found = [method for method in METHODS if method.presented(request)]
    if len(found) > 1:
        raise InvalidRequest("use one client authentication method, not two")
    return found[0] if found else None


def costly(request: Presented) -> bool:
    return any(m.costly and m.presented(request) for m in METHODS)


def authenticate(
    store: GrantStore, request: Presented, *, policy: AssertionPolicy, now: int
) -> Authenticated | None:
    """The client the request authenticates, or None if it presents no credentials."""
    method = presented(request)
    return None if method is None else method.verify(store, request, policy, now)


def claimed_client(request: Presented) -> str | None:
    """Who the request says it is, unverified: for rate limiting and audit only."""
    form, authorization = request.form, request.authorization
    candidates = [form.get("client_id")]
    if "client_assertion" in form:
        candidates.append(assertions.claimed_device(form["client_assertion"]))
    if authorization:
        with suppress(InvalidClient):
            candidates.append(basic(authorization)[0])
    return next((c for c in candidates if c and is_device_id(c)), None)


def basic(authorization: str) -> tuple[str, str]:
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
