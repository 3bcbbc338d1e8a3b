"""Proof of possession on MQTT (README): what a CONNECT with `<token>~<proof>` costs on
the embedded broker against a CONNECT with the token alone, and against its floor, in
the same run.

Both fleets are alike but for `proof_of_possession`; the proofs (Ed25519 device keys,
one per CONNECT, each single use) are signed before each round, so the timing is the
broker's: the proof's signature check, its claims, the replay cache and one read of the
device's credential key. Rounds interleave the two, and stock anonymous amqtt without
plugins (anonymous_amqtt.py), so that a slow moment of the shared machine hits all alike.

The floor of a CONNECT (floor.py, DESIGN.md "Quality bars"): anonymous amqtt's time per
CONNECT plus the raw `cryptography` time of the signatures it must check: the token's
ES256 verify, and for `token~proof` the proof's Ed25519 verify too. Our broker's CONNECT
is faster than stock amqtt's (README, Broker), so it beats that floor; the last line
gives the tighter one of the proof alone: the token's CONNECT plus the raw verify.

    .venv/bin/python benchmarks/pop.py [--connects 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

import anonymous_amqtt  # benchmarks/, the script's directory
import formats
from floor import crypto_costs, describe, floor_rate

from device_sdk import password_with_proof
from tests.stack import Device, free_port, port_open, start_stack, wait_for

ANONYMOUS = "anonymous amqtt"
# The signatures each CONNECT must check (floor.py's names).
OPERATIONS: dict[str, tuple[str, ...]] = {
    ANONYMOUS: (),
    "token alone": ("p256 verify",),
    "token~proof": ("p256 verify", "ed25519 verify"),
}


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
    anon_port = free_port()
    anon = anonymous_amqtt.start(anon_port)
    stack = start_stack(Path(tempfile.mkdtemp(prefix="cb-pop-bench-")))
    try:
        wait_for(lambda: port_open(anon_port), 30, "the anonymous broker")
        plain = formats.issued(stack, formats.fleet(stack))
        bound_fleet = formats.fleet(stack, proof_of_possession=True)
        bound = [(d, d.token()) for d in (stack.device(bound_fleet) for _ in range(16))]
        anonymous: list[tuple[str, str | None]] = [(f"anon-{i}", None) for i in range(16)]
        rates: dict[str, list[float]] = {name: [] for name in OPERATIONS}
        for _ in range(args.rounds):
            rates[ANONYMOUS].append(
                asyncio.run(formats.connect_rate(anon_port, anonymous, args.connects))
            )
            rates["token alone"].append(
                asyncio.run(formats.connect_rate(stack.mqtt_port, plain, args.connects))
            )
            passwords = proven(bound, args.connects)
            rates["token~proof"].append(
                asyncio.run(formats.connect_rate(stack.mqtt_port, passwords, args.connects))
            )
    finally:
        os.killpg(anon.pid, signal.SIGTERM)
        stack.stop()
    costs = crypto_costs()
    base = statistics.median(rates["token alone"])
    anon_rate = statistics.median(rates[ANONYMOUS])
    print(f"raw cryptography: {describe(costs)}")
    print("floor: anonymous amqtt's time per CONNECT + the raw verifies of the CONNECT")
    print(
        f"{'CONNECT/s (16 at a time)':28s} {'median':>8s} {'vs token':>8s} {'vs anon':>7s}"
        f" {'floor/s':>7s} {'vs floor':>8s}  rounds"
    )
    for name, values in rates.items():
        median = statistics.median(values)
        floor = floor_rate(anon_rate, costs, *OPERATIONS[name])
        each = " ".join(f"{v:,.0f}" for v in values)
        print(
            f"{name:28s} {median:8,.0f} {median / base:7.2f}x {median / anon_rate:6.2f}x"
            f" {floor:7,.0f} {median / floor:7.2f}x  {each}"
        )
    proven_rate = statistics.median(rates["token~proof"])
    marginal = floor_rate(base, costs, "ed25519 verify")
    print(
        f"token~proof vs token alone + the raw Ed25519 verify ({marginal:,.0f}/s):"
        f" {proven_rate / marginal:.2f}x; the proof adds"
        f" {(1 / proven_rate - 1 / base) * 1e6:.0f} us a CONNECT"
        f" (raw verify {costs['ed25519 verify'] * 1e6:.0f} us)"
    )


if __name__ == "__main__":
    main()
