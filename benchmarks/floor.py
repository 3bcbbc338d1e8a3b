"""A path's floor (DESIGN.md, issue 11): what a request of that path cannot avoid, measured
in the same run: the bare endpoint's time per request plus the raw `cryptography` time of
the signatures the path must check and make.

    floor time = 1 / bare rate + sum of the path's raw signature operations
    ratio      = path rate / (1 / floor time)
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

REPS = 5
SECONDS = 0.3
MESSAGE = os.urandom(300)  # about the signing input of an assertion or an access token


def _seconds_per_call(fn: Callable[[], object]) -> float:
    def once() -> float:
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < SECONDS:
            for _ in range(20):
                fn()
            count += 20
        return elapsed / count

    return statistics.median(once() for _ in range(REPS))


def crypto_costs() -> dict[str, float]:
    """Seconds per raw operation: Ed25519 and P-256 verify, P-256 sign."""
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    ecdsa = ec.ECDSA(hashes.SHA256())
    ed_sig, p256_sig = ed.sign(MESSAGE), p256.sign(MESSAGE, ecdsa)
    ed_pub, p256_pub = ed.public_key(), p256.public_key()
    return {
        "ed25519 verify": _seconds_per_call(lambda: ed_pub.verify(ed_sig, MESSAGE)),
        "p256 verify": _seconds_per_call(lambda: p256_pub.verify(p256_sig, MESSAGE, ecdsa)),
        "p256 sign": _seconds_per_call(lambda: p256.sign(MESSAGE, ecdsa)),
    }


def floor_rate(bare_rps: float, costs: dict[str, float], *operations: str) -> float:
    """Requests per second of a path whose only work over the bare endpoint is `operations`."""
    return 1.0 / (1.0 / bare_rps + sum(costs[op] for op in operations))


def describe(costs: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds * 1e6:.0f} us" for name, seconds in costs.items())
