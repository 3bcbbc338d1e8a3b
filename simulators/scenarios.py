"""The scenarios of `credbroker simulate`, as one table: the run reads what each one
does from it, and the CLI's help and this docstring are made from it.

Scenarios:
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    tokens_together: bool = False  # every first token at one moment, no boot ramp
    revokes: bool = False  # a share of the fleet is revoked halfway
    attacks: bool = False  # every attack of `simulators.attacks`, against a small fleet


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "telemetry",
            "every device publishes numbered QoS 1 messages; one in ten also subscribes to "
            "its command topic and gets commands; short tokens, so devices refresh "
            "(reconnect with a new token) during the run",
        ),
        Scenario(
            "refresh-storm",
            "every device gets its first token at the same moment, so every token expires "
            "together; the refresh spread shows what the SDK's jitter does with that",
            tokens_together=True,
        ),
        Scenario(
            "revocation",
            "halfway through, a share of the fleet is revoked; the report gives the time "
            "from the revoke request to the disconnect, and whether those devices stopped",
            revokes=True,
        ),
        Scenario("attacks", "an honest fleet, and every attack tried", attacks=True),
        Scenario("mixed", "all of it at once", tokens_together=True, revokes=True, attacks=True),
    )
}

__doc__ = (__doc__ or "") + "\n".join(f"- {s.name}: {s.about}." for s in SCENARIOS.values())
