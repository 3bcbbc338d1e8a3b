"""Proofs of possession in the CONNECT decision (README, Proof of possession on MQTT):
which refusal each bad proof gets, with an injected clock and an in-memory store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from credbroker import jwk, jws
from credbroker.decision import Authenticator, Grant, Kind, Refusal
from credbroker.proof import ReplayCache
from credbroker.verifier import DeviceState, Reason, TokenRejected, Verifier, VerifyPolicy
from device_sdk import generate_key, password_with_proof
from tests.core.test_verifier import ISSUER, NOW, MemoryStore, Setup


@dataclass
class ProofStore(MemoryStore):
    proof_keys: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def proof_key(self, device_id: str, jkt: str) -> tuple[str, Any] | None:
        return self.proof_keys.get(jkt)


@pytest.fixture
def pop() -> tuple[Setup, Authenticator, Any]:
    signing, device_key = generate_key("es256"), generate_key()
    jkt = jwk.thumbprint(jwk.to_jwk(device_key.public_key()))
    store = ProofStore(
        keys={"dev-1#1": signing.public_key()},
        devices={"dev-1": DeviceState("active", 0, proof_required=True)},
        proof_keys={jkt: ("EdDSA", device_key.public_key())},
    )
    verifier = Verifier(VerifyPolicy(issuer=ISSUER), store, clock=lambda: NOW)
    setup = Setup(store, verifier, signing)  # type: ignore[arg-type]
    setup.jkt = jkt  # type: ignore[attr-defined]
    return setup, Authenticator(verifier, 30), device_key


def _decide(auth: Authenticator, password: str) -> Grant | Refusal:
    return auth.authenticate(client_id="dev-1", username="dev-1", password=password, address=None)


def _refused(auth: Authenticator, password: str) -> Reason:
    decision = _decide(auth, password)
    assert isinstance(decision, Refusal) and decision.kind is Kind.BAD_CREDENTIALS, decision
    return decision.reason


def test_each_bad_proof_has_its_reason(pop: tuple[Setup, Authenticator, Any]) -> None:
    setup, auth, key = pop
    token = setup.token(cnf={"jkt": setup.jkt})  # type: ignore[attr-defined]
    assert _refused(auth, token) is Reason.PROOF_REQUIRED
    good = password_with_proof(key, token, now=NOW)
    assert isinstance(_decide(auth, good), Grant)
    assert _refused(auth, good) is Reason.PROOF_REPLAYED
    other = setup.token(cnf={"jkt": setup.jkt})  # type: ignore[attr-defined]
    for bad in (
        token + "~" + password_with_proof(key, other, now=NOW).split("~")[1],  # ath
        password_with_proof(generate_key(), token, now=NOW),
        password_with_proof(key, token, now=NOW - 91),  # 60 s window + 30 s leeway
        password_with_proof(key, token, now=NOW + 91),
        password_with_proof(key, token, audience="elsewhere", now=NOW),
        token + "~",
        token + "~garbage",
    ):
        assert _refused(auth, bad) is Reason.BAD_PROOF
    assert isinstance(_decide(auth, password_with_proof(key, token, now=NOW - 89)), Grant)
    # A token bound to no registered key (or to none at all) proves nothing.
    unbound = setup.token(cnf={"jkt": "not-a-key"})
    assert _refused(auth, password_with_proof(key, unbound, now=NOW)) is Reason.BAD_PROOF


def test_the_alg_is_the_registered_keys(pop: tuple[Setup, Authenticator, Any]) -> None:
    setup, auth, key = pop
    token = setup.token(cnf={"jkt": setup.jkt})  # type: ignore[attr-defined]
    good = password_with_proof(key, token, now=NOW).split("~")[1]
    parsed = jws.parse(good)
    # The same claims under an ES256 header, signed by some P-256 key: the key of this
    # jkt is Ed25519, so no other algorithm is even tried.
    forged = jws.sign(parsed.header | {"alg": "ES256"}, parsed.payload, generate_key("es256"))
    assert _refused(auth, f"{token}~{forged}") is Reason.BAD_PROOF
    unsigned = jws.b64url_encode(b'{"alg":"none","typ":"pop+jwt"}')
    body = good.split(".")[1]
    assert _refused(auth, f"{token}~{unsigned}.{body}.") is Reason.BAD_PROOF


def test_a_non_pop_fleet_takes_a_token_alone(pop: tuple[Setup, Authenticator, Any]) -> None:
    setup, auth, key = pop
    setup.store.devices["dev-1"] = DeviceState("active", 0)
    token = setup.token(cnf={"jkt": setup.jkt})  # type: ignore[attr-defined]
    assert isinstance(_decide(auth, token), Grant)
    assert isinstance(_decide(auth, password_with_proof(key, token, now=NOW)), Grant)
    assert _refused(auth, password_with_proof(generate_key(), token, now=NOW)) is Reason.BAD_PROOF


def test_the_replay_cache_forgets_after_the_window_and_fails_closed_when_full() -> None:
    cache = ReplayCache(max_entries=2)
    assert cache.first_use("a", until=100, now=0)
    assert not cache.first_use("a", until=100, now=50)
    assert cache.first_use("b", until=100, now=50)
    with pytest.raises(TokenRejected) as caught:
        cache.first_use("c", until=100, now=60)
    assert caught.value.reason is Reason.UNAVAILABLE
    assert cache.first_use("c", until=300, now=101)  # a and b expired
    assert cache.first_use("a", until=300, now=101)
