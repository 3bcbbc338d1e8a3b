"""Issuing access tokens (RFC 9068 profile) and rotating refresh tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from credbroker import jws
from credbroker.claims import (
    ACCESS_TOKEN_TYP,
    CERTIFICATE_CONFIRMATION,
    REFERENCE_PREFIX,
    SIGNING_ALG,
    expand_filters,
    kid_for,
)
from provisioning import hashing
from provisioning.grantstore import Client, GrantStore
from provisioning.signing import Keyring


@dataclass(frozen=True)
class Issued:
    access_token: str
    expires_in: int
    refresh_token: str
    jti: str

    def response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


def acl_claim(client: Client) -> dict[str, list[str]]:
    """The device's own ACL if it has one, else its fleet's, with placeholders filled."""
    own = client.own_publish is not None or client.own_subscribe is not None
    pub = (client.own_publish or []) if own else client.fleet_publish
    sub = (client.own_subscribe or []) if own else client.fleet_subscribe
    ids = {"device_id": client.device_id, "fleet": client.fleet}
    return {"pub": expand_filters(pub, **ids), "sub": expand_filters(sub, **ids)}


def sign_access_token(
    *,
    keyring: Keyring,
    store: GrantStore,
    client: Client,
    jkt: str,
    now: int,
    issuer: str,
    audience: str,
    x5t: str = "",
) -> tuple[str, str, int]:
    """The access token of the client's fleet's format: a JWT, or (`reference`) an opaque
    token whose claims only the database keeps (README, Token formats)."""
    kid = kid_for(client.device_id, client.signing_key_version)
    claims = access_claims(
        client=client, jkt=jkt, now=now, issuer=issuer, audience=audience, x5t=x5t
    )
    jti, exp = claims["jti"], claims["exp"]
    if client.token_format == "reference":  # noqa: S105 - a format name
        token = hashing.new_token(REFERENCE_PREFIX)
        store.add_reference(
            token_hash=hashing.token_hash(token),
            device_id=client.device_id,
            jti=jti,
            kid=kid,
            claims=claims,
            exp=exp,
        )
        return token, jti, exp
    key = keyring.private_key(kid, store.sealed_signing_key)
    header = {"alg": SIGNING_ALG, "typ": ACCESS_TOKEN_TYP, "kid": kid}
    return jws.sign(header, claims, key), jti, exp


def access_claims(
    *, client: Client, jkt: str, now: int, issuer: str, audience: str, x5t: str = ""
) -> dict[str, Any]:
    jti = secrets.token_hex(16)
    # A logout moves the cut-off to the next second (iat has second precision); a token
    # granted after it in that same second is dated at the cut-off so that it works.
    iat = max(now, client.tokens_valid_after)
    exp = now + client.token_ttl
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": client.device_id,
        "client_id": client.device_id,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "jti": jti,
        "fleet": client.fleet,
        "acl": acl_claim(client),
    }
    if jkt:  # RFC 7800: bound to the credential key the device proved
        claims["cnf"] = {"jkt": jkt}
    if x5t:  # RFC 8705 section 3.1: and to the client certificate of its grant
        claims["cnf"][CERTIFICATE_CONFIRMATION] = x5t
    return claims


def issue(
    *,
    keyring: Keyring,
    store: GrantStore,
    client: Client,
    jkt: str,
    now: int,
    issuer: str,
    audience: str,
    family_id: str | None = None,
    family_lifetime: int = 0,
    x5t: str = "",
    dpop_jkt: str | None = None,
) -> Issued:
    """An access token and a refresh token, in a new family (bound to `dpop_jkt` if
    given, RFC 9449 section 5) or the given one; `x5t` binds the token (and a new
    family) to a client certificate."""
    token, jti, exp = sign_access_token(
        keyring=keyring,
        store=store,
        client=client,
        jkt=jkt,
        now=now,
        issuer=issuer,
        audience=audience,
        x5t=x5t,
    )
    if family_id is None:
        family_id = secrets.token_hex(16)
        store.new_family(
            family_id=family_id,
            device_id=client.device_id,
            jkt=jkt,
            now=now,
            expires_at=now + family_lifetime,
            x5t=x5t,
            dpop_jkt=dpop_jkt,
        )
    else:
        store.touch_family(family_id=family_id, now=now)
    refresh = hashing.new_token("cbr")
    store.add_refresh(
        token_hash=hashing.token_hash(refresh),
        family_id=family_id,
        device_id=client.device_id,
        now=now,
        access_jti=jti,
        access_exp=exp,
    )
    return Issued(token, exp - now, refresh, jti)
