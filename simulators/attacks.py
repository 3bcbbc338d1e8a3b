"""Hostile devices: each attack is tried and its answer compared with the documented one.

Attackers connect from their own loopback address (127.0.0.2), as a real attacker comes
from elsewhere: the broker's per-address penalty for failed CONNECTs then falls on them,
not on the honest fleet. Brute force and stolen tokens aim at attacker-owned client ids,
because the per-client penalty would otherwise lock the victim out for a while (a real
trade-off of penalties, noted in README).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from credbroker.jwk import from_jwk
from credbroker.jws import b64url_decode, b64url_encode
from device_sdk import assertion_form, generate_key, password_with_proof, proof_of_possession
from device_sdk._tokens import TokenSource
from simulators.device import Backend, Context, fetch_token
from simulators.fleet import Operator, VirtualIdentity
from simulators.mqtt import AsyncClient

ATTACKER_ADDRESS = "127.0.0.2"
BAD_CREDENTIALS, REFUSED_SUBSCRIPTION = "CONNACK 4", "SUBACK 128"


@dataclass
class Kit:
    """What the attackers hold: their own identities, a short-lived fleet's device, and
    the legitimate backend as a witness of what gets delivered."""

    ctx: Context
    operator: Operator
    attacker: VirtualIdentity  # in the honest fleet, with the honest ACL
    victim: VirtualIdentity  # attacker-owned too: its token gets "stolen"
    short_lived: VirtualIdentity  # in a fleet with 1 s tokens
    backend: Backend
    leeway: float
    key_bound: VirtualIdentity  # in a fleet with proof_of_possession (README)

    def tokens(self, identity: VirtualIdentity) -> TokenSource:
        return TokenSource(
            api_url=self.ctx.api, device_id=identity.device_id, private_key=identity.key
        )

    async def token(self, identity: VirtualIdentity) -> str:
        return (await fetch_token(self.ctx, self.tokens(identity))).access_token

    async def connect(
        self, client_id: str, password: str, username: str | None = None
    ) -> tuple[str, AsyncClient]:
        client = AsyncClient(self.ctx.driver, client_id, clean_session=True)
        code = await client.connect(
            self.ctx.mqtt_host,
            self.ctx.mqtt_port,
            username=username or client_id,
            password=password,
            bind_address=ATTACKER_ADDRESS,
        )
        return (f"CONNACK {code}" if code >= 0 else "no CONNACK"), client


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload)), signature


def _compact(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    head, body = (b64url_encode(json.dumps(part).encode()) for part in (header, payload))
    return f"{head}.{body}.{signature}"


async def _connect_with(kit: Kit, password: str) -> str:
    answer, client = await kit.connect(kit.attacker.device_id, password)
    client.close()
    return answer


# -- the attacks ---------------------------------------------------------------------------


async def expired(kit: Kit) -> str:
    token = await kit.token(kit.short_lived)
    _, claims, _ = _parts(token)
    await asyncio.sleep(max(0.0, claims["exp"] + kit.leeway + 1 - time.time()))
    answer, client = await kit.connect(kit.short_lived.device_id, token)
    client.close()
    return answer


async def tampered(kit: Kit) -> str:
    header, claims, signature = _parts(await kit.token(kit.attacker))
    claims["acl"] = {"pub": ["#"], "sub": ["#"]}
    return await _connect_with(kit, _compact(header, claims, signature))


async def alg_none(kit: Kit) -> str:
    header, claims, _ = _parts(await kit.token(kit.attacker))
    return await _connect_with(kit, _compact(header | {"alg": "none"}, claims))


async def hs256_with_public_key(kit: Kit) -> str:
    """Key confusion: an HMAC keyed with the device's published signing key."""
    header, claims, _ = _parts(await kit.token(kit.attacker))
    jwks = await kit.operator.jwks(kit.attacker.device_id)
    public = from_jwk(jwks["keys"][0])
    secret = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged_header = header | {"alg": "HS256"}
    unsigned = _compact(forged_header, claims).rstrip(".")
    signature = b64url_encode(hmac.new(secret, unsigned.encode(), hashlib.sha256).digest())
    return await _connect_with(kit, f"{unsigned}.{signature}")


async def stolen_token(kit: Kit) -> str:
    """The victim's valid token presented under another client id."""
    return await _connect_with(kit, await kit.token(kit.victim))


async def publish_escalation(kit: Kit) -> str:
    """Publish as another device: the backend must not receive it."""
    answer, client = await kit.connect(kit.attacker.device_id, await kit.token(kit.attacker))
    if answer != "CONNACK 0":
        client.close()
        return f"honest connect failed: {answer}"
    nonce = secrets.token_hex(4)
    await client.publish(kit.ctx.topics.telemetry(kit.victim.device_id), f"attack {nonce}".encode())
    # Same publisher, same order: once the marker on its own topic arrives, the forbidden
    # message would have arrived before it.
    marker = f"marker {nonce}"
    arrived = kit.backend.expect_marker(marker)
    client.publish(kit.ctx.topics.telemetry(kit.attacker.device_id), marker.encode())
    await asyncio.wait_for(arrived, 30)
    client.close()
    return "delivered" if f"attack {nonce}" in kit.backend.foreign else "not delivered"


async def _subscribe(kit: Kit, topic_filter: str) -> str:
    answer, client = await kit.connect(kit.attacker.device_id, await kit.token(kit.attacker))
    if answer != "CONNACK 0":
        client.close()
        return f"honest connect failed: {answer}"
    granted = await client.subscribe(topic_filter)
    client.close()
    return f"SUBACK {granted[0]}"


async def subscribe_escalation(kit: Kit) -> str:
    return await _subscribe(kit, kit.ctx.topics.telemetry("+"))


async def sys_subscribe(kit: Kit) -> str:
    return await _subscribe(kit, "$SYS/#")


async def _twice(kit: Kit, form: dict[str, str]) -> str:
    """Spend a single-use credential honestly, then present it again."""
    endpoint = kit.tokens(kit.attacker).token_endpoint
    first = await kit.ctx.http.post(endpoint, data=form)
    if first.status_code != 200:
        return f"honest use failed: {first.status_code}"
    again = await kit.ctx.http.post(endpoint, data=form)
    return f"HTTP {again.status_code} {again.json().get('error', '')}".strip()


async def replayed_assertion(kit: Kit) -> str:
    tokens = kit.tokens(kit.attacker)
    form = assertion_form(
        kit.attacker.key, device_id=kit.attacker.device_id, audience=tokens.token_endpoint
    )
    return await _twice(kit, form)


async def reused_refresh_token(kit: Kit) -> str:
    tokens = kit.tokens(kit.victim)
    await fetch_token(kit.ctx, tokens)
    return await _twice(kit, next(tokens.forms()))  # the grant with the current refresh token


async def brute_force(kit: Kit) -> str:
    """Random passwords for one client id; every guess must be refused."""
    answers = {await _connect_with(kit, secrets.token_urlsafe(24)) for _ in range(5)}
    return answers.pop() if len(answers) == 1 else " / ".join(sorted(answers))


# -- proof of possession (README, Proof of possession on MQTT): a stolen token is useless


async def _key_bound(kit: Kit, password: str) -> str:
    answer, client = await kit.connect(kit.key_bound.device_id, password)
    client.close()
    return answer


async def pop_token_alone(kit: Kit) -> str:
    """The token of a key-bound device, stolen: the thief lacks the device key."""
    return await _key_bound(kit, await kit.token(kit.key_bound))


async def pop_replayed_proof(kit: Kit) -> str:
    """A password (token and proof) seen on the wire, presented again."""
    password = password_with_proof(kit.key_bound.key, await kit.token(kit.key_bound))
    honest = await _key_bound(kit, password)
    if honest != "CONNACK 0":
        return f"honest connect failed: {honest}"
    return await _key_bound(kit, password)


async def pop_proof_for_another_token(kit: Kit) -> str:
    """A proof the device made for one of its tokens, sent with another (ath differs)."""
    token, other = await kit.token(kit.key_bound), await kit.token(kit.key_bound)
    proof = proof_of_possession(kit.key_bound.key, access_token=other, audience="mqtt")
    return await _key_bound(kit, f"{token}~{proof}")


async def pop_proof_by_another_key(kit: Kit) -> str:
    """The stolen token with a proof the thief signed with a key of its own."""
    return await _key_bound(
        kit, password_with_proof(generate_key(), await kit.token(kit.key_bound))
    )


Attempt = Callable[[Kit], Awaitable[str]]
ATTACKS: dict[str, tuple[str, Attempt]] = {
    "tampered token": (BAD_CREDENTIALS, tampered),
    "alg none": (BAD_CREDENTIALS, alg_none),
    "HS256 with the public key": (BAD_CREDENTIALS, hs256_with_public_key),
    "stolen token on another client id": (BAD_CREDENTIALS, stolen_token),
    "publish outside the ACL": ("not delivered", publish_escalation),
    "subscribe outside the ACL": (REFUSED_SUBSCRIPTION, subscribe_escalation),
    "$SYS subscribe": (REFUSED_SUBSCRIPTION, sys_subscribe),
    "replayed client assertion": ("HTTP 401 invalid_client", replayed_assertion),
    "reused refresh token": ("HTTP 400 invalid_grant", reused_refresh_token),
    "brute-force passwords": (BAD_CREDENTIALS, brute_force),
    "key-bound token without a proof": (BAD_CREDENTIALS, pop_token_alone),
    "replayed proof of possession": (BAD_CREDENTIALS, pop_replayed_proof),
    "proof made for another token": (BAD_CREDENTIALS, pop_proof_for_another_token),
    "proof signed by another key": (BAD_CREDENTIALS, pop_proof_by_another_key),
    "expired token": (BAD_CREDENTIALS, expired),  # last: it waits out the leeway
}


async def run_attacks(kit: Kit, rounds: int, spacing: float) -> None:
    """Every attack `rounds` times, `spacing` seconds apart, while the fleet runs."""
    stats = kit.ctx.stats
    for round_ in range(rounds):
        if round_ and await kit.ctx.pause(spacing):
            return
        for name, (expected, attempt) in ATTACKS.items():
            try:
                answer = await attempt(kit)
            except (TimeoutError, OSError, ValueError, KeyError) as exc:
                answer = f"error: {type(exc).__name__}: {exc}"
            stats.attack(name, expected).record(answer)
