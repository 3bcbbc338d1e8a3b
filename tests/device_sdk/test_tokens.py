"""How `TokenSource` reads the token endpoint's answers (the rules, without I/O)."""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path

import pytest

from device_sdk import DeviceRevoked, TokenError, generate_key
from device_sdk._tokens import TokenSource


def _source(tmp_path: Path | None = None) -> TokenSource:
    return TokenSource(
        api_url="http://api.test", device_id="d-1", private_key=generate_key(), state_dir=tmp_path
    )


def _ok(refresh: str = "rt-2") -> bytes:
    return json.dumps({"access_token": "at", "expires_in": 60, "refresh_token": refresh}).encode()


def _error(error: str) -> bytes:
    return json.dumps({"error": error}).encode()


def test_a_refused_refresh_token_falls_back_to_the_device_key(tmp_path: Path) -> None:
    (tmp_path / "refresh_token").write_text("rt-1")
    source = _source(tmp_path)
    forms = source.forms()
    first = next(forms)
    assert first == {"grant_type": "refresh_token", "refresh_token": "rt-1"}
    assert source.accept(first, 400, {}, _error("invalid_grant")) is None
    assert (tmp_path / "refresh_token").read_text() == ""  # not presented again
    second = next(forms)
    assert second["grant_type"] == "client_credentials"
    token = source.accept(second, 200, {}, _ok())
    assert token is not None and token.access_token == "at"
    assert (tmp_path / "refresh_token").read_text() == "rt-2"


def test_retry_after_reaches_the_caller() -> None:
    source = _source()
    with pytest.raises(TokenError) as caught:
        source.accept(next(source.forms()), 429, {"retry-after": "12"}, _error("invalid_client"))
    # A 429 names what failed, but it only means "later": never "revoked, stop".
    assert caught.value.transient and caught.value.retry_after == 12
    assert not isinstance(caught.value, DeviceRevoked)


def test_invalid_client_means_stop() -> None:
    source = _source()
    with pytest.raises(DeviceRevoked):
        source.accept(next(source.forms()), 401, {}, _error("invalid_client"))


def test_a_refusal_that_reveals_clock_skew_signs_again() -> None:
    source = _source()
    forms = source.forms()
    three_hours_ahead = email.utils.formatdate(time.time() + 3 * 3600, usegmt=True)
    assert (
        source.accept(next(forms), 401, {"date": three_hours_ahead}, _error("invalid_client"))
        is None
    )
    assert source.skew == pytest.approx(3 * 3600, abs=5)
    again = next(forms)
    # The second assertion is dated on the server's clock.
    import jwt

    claims = jwt.decode(again["client_assertion"], options={"verify_signature": False})
    assert claims["iat"] == pytest.approx(time.time() + 3 * 3600, abs=5)
    with pytest.raises(DeviceRevoked):  # no third try when the clock was not the problem
        source.accept(again, 401, {"date": three_hours_ahead}, _error("invalid_client"))


def test_garbage_answers_are_token_errors_not_crashes() -> None:
    source = _source()
    with pytest.raises(TokenError):
        source.accept(next(source.forms()), 502, {}, b"<html>bad gateway</html>")


def _metadata(**members: object) -> bytes:
    return json.dumps({"token_endpoint": "https://issuer.test/oauth2/token", **members}).encode()


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_proofs_follow_the_metadata(alg: str) -> None:
    import jwt

    key = generate_key(alg)  # type: ignore[arg-type]
    source = TokenSource(api_url="http://api.test", device_id="d-1", private_key=key)
    assert not source.discovered and source.proof_headers() == {}
    source.learn_metadata(200, _metadata(dpop_signing_alg_values_supported=["EdDSA", "ES256"]))
    assert source.dpop
    proof = source.proof_headers()["DPoP"]
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and "d" not in header["jwk"]
    claims = jwt.decode(proof, jwt.PyJWK(header["jwk"]), algorithms=[header["alg"]])
    # htu is the token endpoint as the server names it, not as we reach it.
    assert claims["htm"] == "POST" and claims["htu"] == "https://issuer.test/oauth2/token"
    assert claims["iat"] == pytest.approx(time.time(), abs=5) and claims["jti"]
    assert source.proof_headers()["DPoP"] != proof  # a new jti each time


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, _metadata()),  # a server without DPoP
        (200, _metadata(dpop_signing_alg_values_supported=["RS256"])),  # not our key's alg
        (404, b"not found"),  # a server without metadata
        (200, b"garbage"),
    ],
)
def test_no_proofs_unless_the_server_takes_our_keys_alg(status: int, body: bytes) -> None:
    source = _source()
    source.learn_metadata(status, body)
    assert source.discovered and not source.dpop and source.proof_headers() == {}


def test_a_5xx_metadata_answer_is_asked_again() -> None:
    source = _source()
    source.learn_metadata(503, b"")
    assert not source.discovered
