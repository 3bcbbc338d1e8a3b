"""Property tests: the verifier only ever raises its own error, and agrees with PyJWT."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credbroker import jws
from credbroker.verifier import DeviceState, TokenRejected, Verifier, VerifyPolicy
from tests.core.test_verifier import ISSUER, MemoryStore

KEY = ec.generate_private_key(ec.SECP256R1())
STORE = MemoryStore(keys={"dev-1#1": KEY.public_key()}, devices={"dev-1": DeviceState("active", 0)})
VERIFIER = Verifier(VerifyPolicy(issuer=ISSUER, audience="mqtt", leeway=30), STORE)
HEADER = {"alg": "ES256", "typ": "at+jwt", "kid": "dev-1#1"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "dev-1",
        "client_id": "dev-1",
        "aud": "mqtt",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "fleet": "f",
        "acl": {"pub": ["devices/dev-1/#"], "sub": []},
    }
    claims.update(over)
    return claims


def _verdict_ours(token: str) -> bool:
    try:
        VERIFIER.verify(token)
    except TokenRejected:
        return False
    return True


def _verdict_pyjwt(token: str) -> bool:
    try:
        jwt.decode(
            token,
            KEY.public_key(),
            algorithms=["ES256"],
            audience="mqtt",
            issuer=ISSUER,
            leeway=30,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
        )
    except jwt.PyJWTError:
        return False
    return True


def _mangle(token: str, data: st.DataObject) -> str:
    how = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "swap", "none"]))
    if how == "none" or not token:
        return token
    i = data.draw(st.integers(0, len(token) - 1))
    if how == "flip":
        return token[:i] + data.draw(st.characters(codec="ascii")) + token[i + 1 :]
    if how == "insert":
        return token[:i] + data.draw(st.text(max_size=3)) + token[i:]
    if how == "delete":
        return token[:i] + token[i + 1 :]
    if how == "truncate":
        return token[:i]
    parts = token.split(".")
    return ".".join(reversed(parts))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=600))
def test_arbitrary_strings_only_raise_token_rejected(text: str) -> None:
    _verdict_ours(text)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_latin1_only_raise_token_rejected(raw: bytes) -> None:
    _verdict_ours(raw.decode("latin-1"))


@settings(max_examples=300)
@given(st.data())
def test_mangled_real_tokens_only_raise_token_rejected(data: st.DataObject) -> None:
    token = jws.sign(HEADER, _claims(), KEY)
    _verdict_ours(_mangle(token, data))


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(
            ["iss", "sub", "client_id", "aud", "iat", "nbf", "exp", "jti", "acl", "fleet"]
        ),
        json_values,
        max_size=5,
    )
)
def test_validly_signed_weird_claims_only_raise_token_rejected(over: dict[str, Any]) -> None:
    _verdict_ours(_sign_stdlib_json(_claims(**over)))


def _sign_stdlib_json(claims: dict[str, Any]) -> str:
    """ES256 over stdlib JSON, which (unlike orjson) carries integers beyond 64 bits."""
    head = jws.b64url_encode(json.dumps(HEADER).encode())
    body = jws.b64url_encode(json.dumps(claims).encode())
    r, s = decode_dss_signature(KEY.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{head}.{body}." + jws.b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


# Offsets stay well away from the leeway edges: PyJWT reads the wall clock itself.
offsets = st.sampled_from([-7200, -100, -45, 0, 5, 45, 100, 7200])


@settings(max_examples=300, deadline=None)
@given(
    st.data(),
    offsets,
    offsets,
    offsets,
    st.sampled_from(["mqtt", "other", ["mqtt", "x"], ["x"]]),
    st.sampled_from([ISSUER, ISSUER + "/", "https://evil.example"]),
)
def test_differential_against_pyjwt(
    data: st.DataObject, exp: int, nbf: int, iat: int, aud: Any, iss: str
) -> None:
    now = int(time.time())
    token = jws.sign(
        HEADER, _claims(exp=now + exp, nbf=now + nbf, iat=now + iat, aud=aud, iss=iss), KEY
    )
    token = _mangle(token, data)
    assert _verdict_ours(token) == _verdict_pyjwt(token), token
