"""Verifier throughput vs raw cryptography P-256 verify of the same signing input.

Prints verifications per second for: raw `cryptography` verify (baseline), our
`Verifier.verify` (all checks, in-memory trust store), and PyJWT's `jwt.decode` with the
same pinned algorithm, audience, issuer and leeway, for reference. Each case runs in
small batches interleaved with batches of the raw baseline, and its ratio is the median
of the paired batch ratios: another process slowing the machine for a while slows both
sides of a pair, where separate runs of half a second each would each catch it or not.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from credbroker import jws
from credbroker.verifier import CertificateHolder, DeviceState, Signer, Verifier, VerifyPolicy

ISSUER = "http://127.0.0.1:8000"
REPS = 400  # paired batches per case
BATCH = 10  # calls per batch


class Store:
    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        self.key = key
        self.state = DeviceState("active", 0)

    def signing_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        return self.key if kid == "dev-42#1" else None

    def retired_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        return None

    def device_state(self, device_id: str) -> DeviceState | None:
        return self.state

    def is_jti_revoked(self, jti: str) -> bool:
        return False

    def reference(self, token_hash: str) -> tuple[dict[str, Any], str] | None:
        return None

    def signer(self, device_id: str) -> Signer | None:
        return None

    def proof_required(self, device_id: str) -> bool:
        return False

    def proof_key(self, device_id: str, jkt: str) -> tuple[str, ec.EllipticCurvePublicKey] | None:
        return None

    def certificate_holder(self, device_id: str) -> CertificateHolder | None:
        return None


def paired(fn, base) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(calls per second of `fn`, median of base-batch time / fn-batch time)."""
    clock, ratios, spent = time.perf_counter, [], 0.0
    for _ in range(REPS):
        began = clock()
        for _ in range(BATCH):
            base()
        middle = clock()
        for _ in range(BATCH):
            fn()
        ended = clock()
        ratios.append((middle - began) / (ended - middle))
        spent += ended - middle
    return REPS * BATCH / spent, statistics.median(ratios)


def main() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key()
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "dev-42",
        "client_id": "dev-42",
        "aud": "mqtt",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "fleet": "sensors",
        "acl": {
            "pub": ["devices/dev-42/#", "fleets/sensors/telemetry/dev-42"],
            "sub": ["devices/dev-42/cmd/#", "fleets/sensors/telemetry/+"],
        },
        "cnf": {"jkt": "nTy4X0JkO0T3b-QqpsBOc1TTRxFJjJC7n0EGOWLr1Ns"},
    }
    token = jws.sign({"alg": "ES256", "typ": "at+jwt", "kid": "dev-42#1"}, claims, private)
    signing_input, _, sig_b64 = token.rpartition(".")
    raw_sig = jws.b64url_decode(sig_b64)
    der = encode_dss_signature(
        int.from_bytes(raw_sig[:32], "big"), int.from_bytes(raw_sig[32:], "big")
    )
    data = signing_input.encode()
    verifier = Verifier(VerifyPolicy(issuer=ISSUER, audience="mqtt", leeway=30), Store(public))
    ecdsa = ec.ECDSA(hashes.SHA256())

    cases = {
        "raw cryptography verify": lambda: public.verify(der, data, ecdsa),
        "raw + r||s to DER, fresh bytes": lambda: public.verify(
            encode_dss_signature(
                int.from_bytes(raw_sig[:32], "big"), int.from_bytes(raw_sig[32:], "big")
            ),
            signing_input.encode(),
            ecdsa,
        ),
        "credbroker Verifier.verify": lambda: verifier.verify(
            token, client_id="dev-42", username="dev-42"
        ),
        "PyJWT jwt.decode": lambda: jwt.decode(
            token, public, algorithms=["ES256"], audience="mqtt", issuer=ISSUER, leeway=30
        ),
    }
    base = cases["raw cryptography verify"]
    print(f"token: {len(token)} chars, signing input {len(data)} bytes;"
          f" median of {REPS} paired batches of {BATCH}")  # fmt: skip
    for name, fn in cases.items():
        per_second, ratio = paired(fn, base)
        print(f"{name:32s} {per_second:9,.0f}/s  {1e6 / per_second:7.1f} us  ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
