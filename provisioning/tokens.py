"""Issuing access tokens (RFC 9068 profile) and rotating refresh tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from credbroker import jws
from credbroker.claims import ACCESS_TOKEN_TYP, SIGNING_ALG, expand_filters
from provisioning import hashing
from provisioning.models import Device, Fleet, RefreshFamily, RefreshToken
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


def acl_claim(device: Device, fleet: Fleet) -> dict[str, list[str]]:
    """The device's own ACL if it has one, else its fleet's, with placeholders filled."""
    own = device.acl_publish is not None or device.acl_subscribe is not None
    pub = (device.acl_publish or []) if own else fleet.acl_publish
    sub = (device.acl_subscribe or []) if own else fleet.acl_subscribe
    ids = {"device_id": device.device_id, "fleet": fleet.name}
    return {"pub": expand_filters(pub, **ids), "sub": expand_filters(sub, **ids)}


def sign_access_token(
    *,
    keyring: Keyring,
    session: Session,
    device: Device,
    fleet: Fleet,
    jkt: str,
    now: int,
    issuer: str,
    audience: str,
) -> tuple[str, str, int]:
    kid, key = keyring.private_key(session=session, device=device)
    jti = uuid.uuid4().hex
    exp = now + fleet.token_ttl
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": device.device_id,
        "client_id": device.device_id,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": exp,
        "jti": jti,
        "fleet": fleet.name,
        "acl": acl_claim(device, fleet),
    }
    if jkt:  # RFC 7800: bound to the credential key the device proved
        claims["cnf"] = {"jkt": jkt}
    header = {"alg": SIGNING_ALG, "typ": ACCESS_TOKEN_TYP, "kid": kid}
    return jws.sign(header, claims, key), jti, exp


def issue(
    *,
    keyring: Keyring,
    session: Session,
    device: Device,
    fleet: Fleet,
    jkt: str,
    now: int,
    issuer: str,
    audience: str,
    family: RefreshFamily | None = None,
    family_lifetime: int = 0,
) -> Issued:
    """An access token and a refresh token, in a new family or the given one."""
    token, jti, exp = sign_access_token(
        keyring=keyring,
        session=session,
        device=device,
        fleet=fleet,
        jkt=jkt,
        now=now,
        issuer=issuer,
        audience=audience,
    )
    if family is None:
        family = RefreshFamily(
            id=uuid.uuid4().hex,
            device_id=device.device_id,
            jkt=jkt,
            created_at=now,
            expires_at=now + family_lifetime,
        )
        session.add(family)
        session.flush()
    refresh = hashing.new_token("cbr")
    session.add(
        RefreshToken(
            token_hash=hashing.token_hash(refresh),
            family_id=family.id,
            device_id=device.device_id,
            created_at=now,
            access_jti=jti,
            access_exp=exp,
        )
    )
    return Issued(token, exp - now, refresh, jti)
