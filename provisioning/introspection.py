"""Token introspection (RFC 7662) and revocation (RFC 7009), for every kind of token
(`tokenkinds` says what a presented token is).

Revocation takes the token endpoint's client authentication methods (`clientauth`), an
admin key with `tokens:revoke` (the route's), or nothing but the token: holding a token
is proof enough to kill it (README, Decisions), except a refresh token bound to a DPoP
key, whose holder may not have the key (a copy of a device's state file): that one needs
client authentication (RFC 7009 section 2.1, as for any confidential client) or an admin
key, so that the copy cannot end the device's family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509

from provisioning import attempts, clientauth, tokenkinds
from provisioning.errors import InvalidClient, InvalidGrant, InvalidRequest
from provisioning.grantstore import GrantStore
from provisioning.services import Services

INACTIVE: dict[str, Any] = {"active": False}
HOLDER = "holder"  # the actor of a revocation by possession alone


def introspect(services: Services, token: str) -> dict[str, Any]:
    found = tokenkinds.find(services, token)
    return found.members if found is not None and found.active else INACTIVE


def revoke_request(
    services: Services,
    form: Mapping[str, str],
    authorization: str | None,
    address: str,
    certificate: x509.Certificate | None = None,
) -> None:
    """RFC 7009 section 2.1: a revocation request with client authentication (any method
    of the token endpoint) or none, the token's possession being proof enough.

    The client's credentials are checked first, then that the token was issued to it; a
    request that names its client without credentials (`client_id`, as a public client
    does) is held to the same. Failed authentications count as at the token endpoint.
    """
    presented = clientauth.Presented(form, authorization, certificate)
    method = clientauth.presented(presented)
    if method is None:
        revoke(services, _token(form), actor=HOLDER, owner=form.get("client_id") or None)
        return
    with attempts.counted(
        services,
        action="token.revoke",
        label="revoke",
        client=clientauth.claimed_client(presented),
        address=address,
        costly=method.costly,
    ):
        # A unit of work: an assertion's jti is written, as at the token endpoint.
        with services.commits.unit() as unit:
            authenticated = clientauth.authenticate(
                GrantStore(unit.conn, unit.changes),
                presented,
                policy=services.revocation_assertion_policy,
                now=services.now(),
            )
        assert authenticated is not None  # noqa: S101 - a method was presented
        device_id = authenticated.client.device_id
        revoke(services, _token(form), actor=f"client:{device_id}", owner=device_id)


def _token(form: Mapping[str, str]) -> str:
    if not form.get("token"):
        raise InvalidRequest("token is required")
    return form["token"]


def _own(device_id: str, owner: str | None) -> None:
    """RFC 7009 section 2.1: "verifies whether the token was issued to the client making
    the revocation request"; if not, "the request is refused". RFC 6749 section 5.2
    defines `invalid_grant` for a grant that "was issued to another client"."""
    if owner is not None and owner != device_id:
        raise InvalidGrant("the token was issued to another client")


def revoke(services: Services, token: str, *, actor: str, owner: str | None = None) -> None:
    """RFC 7009 section 2.2: unknown or invalid tokens are not an error. `owner`: the
    client the token must have been issued to (None: an admin's, any token)."""
    found = tokenkinds.find(services, token)
    if found is None:
        return
    _own(found.device_id, owner)
    if found.dpop_bound and actor == HOLDER:
        raise InvalidClient("a DPoP-bound refresh token is revoked with client authentication")
    with services.transaction() as session:
        found.revoke(session, actor)
