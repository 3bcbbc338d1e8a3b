"""Proof of possession on MQTT (README): what a CONNECT with `<token>~<proof>` costs on
the embedded broker against a CONNECT with the token alone, in the same run.

Both fleets are alike but for `proof_of_possession`; the proofs (Ed25519 device keys,
one per CONNECT, each single use) are signed before each round, so the timing is the
broker's: the proof's signature check, its claims, the replay cache and one read of the
device's credential key. Rounds interleave the two so that a slow moment of the shared
machine hits both alike.

    .venv/bin/python benchmarks/pop.py [--connects 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

import formats  # benchmarks/, the script's directory

from device_sdk import password_with_proof
from tests.stack import Device, start_stack


def proven(devices: list[tuple[Device, str]], total: int) -> formats.Credentials:
    """`total` single-use passwords, cycling over the devices."""
    return [
        (device.id, password_with_proof(device.key, token))
        for device, token in (devices[i % len(devices)] for i in range(total))
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connects", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = start_stack(Path(tempfile.mkdtemp(prefix="cb-pop-bench-")))
    try:
        plain = formats.issued(stack, formats.fleet(stack))
        bound_fleet = formats.fleet(stack, proof_of_possession=True)
        bound = [(d, d.token()) for d in (stack.device(bound_fleet) for _ in range(16))]
        rates: dict[str, list[float]] = {"token alone": [], "token~proof": []}
        for _ in range(args.rounds):
            rates["token alone"].append(
                asyncio.run(formats.connect_rate(stack.mqtt_port, plain, args.connects))
            )
            passwords = proven(bound, args.connects)
            rates["token~proof"].append(
                asyncio.run(formats.connect_rate(stack.mqtt_port, passwords, args.connects))
            )
    finally:
        stack.stop()
    base = statistics.median(rates["token alone"])
    print(f"{'CONNECT/s (16 at a time)':28s} {'median':>8s}  vs token alone  rounds")
    for name, values in rates.items():
        median = statistics.median(values)
        each = " ".join(f"{v:,.0f}" for v in values)
        print(f"{name:28s} {median:8,.0f}  {median / base:.2f}x           {each}")


if __name__ == "__main__":
    main()
