"""Client authentication (RFC 6749 section 2.3): one registry of methods for the token
and revocation endpoints, and the metadata lists its names (RFC 8414 section 2).

- private_key_jwt (RFC 7523 section 2.2): `client_assertion` signed by a credential key
- client_secret_basic (RFC 6749 section 2.3.1): form-urlencoded id and secret in Basic
- client_secret_post (the same section): `client_id` and `client_secret` in the form

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
class Authenticated:
    client: Client
    method: str  # a name of `METHODS`
    jkt: str  # RFC 7638 thumbprint of the proven credential key; "" for a secret


def _private_key_jwt(
    store: GrantStore, form: Form, authorization: str | None, policy: AssertionPolicy, now: int
) -> Authenticated:
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
    store: GrantStore, form: Form, authorization: str | None, policy: AssertionPolicy, now: int
) -> Authenticated:
    device_id, secret = basic(authorization or "")
    if form.get("client_id", device_id) != device_id:
        raise InvalidClient("client_id does not match the HTTP Basic credentials")
    return _secret(store, device_id, secret, "client_secret_basic")


def _client_secret_post(
    store: GrantStore, form: Form, authorization: str | None, policy: AssertionPolicy, now: int
) -> Authenticated:
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


def _active_client(
    store: GrantStore, device_id: str, auth_method: str, *, keys_at: int | None = None
) -> Client:
    client = store.client(device_id, keys_at=keys_at)
    if client is None or client.auth_method != auth_method:
        raise InvalidClient("unknown client or wrong authentication method")
    if client.status != "active":
        raise InactiveClient(f"device is {client.status}")
    return client


Verify = Callable[[GrantStore, Form, str | None, AssertionPolicy, int], Authenticated]


@dataclass(frozen=True)
class Method:
    name: str  # IANA "OAuth Token Endpoint Authentication Methods"
    presented: Callable[[Form, str | None], bool]
    verify: Verify
    costly: bool  # an argon2 check (~50 ms): not run for an address past its limit


METHODS = (
    Method("private_key_jwt", lambda f, a: "client_assertion" in f, _private_key_jwt, False),
    Method("client_secret_basic", lambda f, a: a is not None, _client_secret_basic, True),
    Method("client_secret_post", lambda f, a: "client_secret" in f, _client_secret_post, True),
)
NAMES = [method.name for method in METHODS]


def presented(form: Form, authorization: str | None) -> Method | None:
    """The method the request uses, if any."""
    found = [method for method in METHODS if method.presented(form, authorization)]
    if len(found) > 1:
        raise InvalidRequest("use one client authentication method, not two")
    return found[0] if found else None


def costly(form: Form, authorization: str | None) -> bool:
    return any(m.costly and m.presented(form, authorization) for m in METHODS)


def authenticate(
    store: GrantStore,
    form: Form,
    authorization: str | None,
    *,
    policy: AssertionPolicy,
    now: int,
) -> Authenticated | None:
    """The client the request authenticates, or None if it presents no credentials."""
    method = presented(form, authorization)
    return None if method is None else method.verify(store, form, authorization, policy, now)


def claimed_client(form: Form, authorization: str | None) -> str | None:
    """Who the request says it is, unverified: for rate limiting and audit only."""
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
