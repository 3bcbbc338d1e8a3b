"""What a simulation counted, and the report made of it."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from device_sdk._policy import reason_name


def percentile(samples: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def _ms(samples: list[float]) -> dict[str, float | None]:
    return {
        "p50": _round(percentile(samples, 50)),
        "p99": _round(percentile(samples, 99)),
        "n": len(samples),
    }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


@dataclass
class Attack:
    """One kind of attack: how often it was tried and how each try was answered."""

    name: str
    expected: str  # the documented answer, e.g. "CONNACK 4"
    tried: int = 0
    stopped: int = 0  # answered as documented
    answers: Counter[str] = field(default_factory=Counter)

    def record(self, answer: str) -> None:
        self.tried += 1
        self.answers[answer] += 1
        if answer == self.expected:
            self.stopped += 1


@dataclass
class Stats:
    """Counters the devices update while the scenario runs."""

    devices: int = 0
    connects_ok: int = 0
    sessions_lost: int = 0  # persistent sessions not present on a reconnect (expected 0)
    refused: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    delivered: int = 0
    duplicates: int = 0
    commands_sent: int = 0
    commands_delivered: int = 0
    refreshes: int = 0
    # By protocol ("3.1.1", "5"): devices, connects after a device's first, and MQTT 5.0
    # re-authentications (a refresh in the connection, instead of a reconnect).
    protocols: Counter[str] = field(default_factory=Counter)
    reconnects: Counter[str] = field(default_factory=Counter)
    reauthentications: Counter[str] = field(default_factory=Counter)
    stopped: Counter[str] = field(default_factory=Counter)  # honest devices that gave up
    first_token_latency: list[float] = field(default_factory=list)  # boot: issue 11's measure
    token_latency: list[float] = field(default_factory=list)  # every grant, first and refreshes
    connect_latency: list[float] = field(default_factory=list)
    refresh_times: list[float] = field(default_factory=list)  # seconds since the start
    revoked: int = 0
    revocation_latency: list[float] = field(default_factory=list)
    revoked_stopped: int = 0
    attacks: dict[str, Attack] = field(default_factory=dict)
    lost_sample: dict[str, str] = field(default_factory=dict)

    def refused_connect(self, code: int) -> None:
        """Counted by code and name: "5 not authorized" (3.1.1), "0x87 not authorized" (5.0)."""
        if code < 0:
            self.refused["no answer"] += 1
        else:
            shown = f"{code:#04x}" if code >= 0x80 else str(code)
            self.refused[f"{shown} {reason_name(code)}"] += 1

    def reconnected(self, protocol: str) -> None:
        self.reconnects[protocol] += 1

    def reauthenticated(self, protocol: str) -> None:
        self.reauthentications[protocol] += 1

    def attack(self, name: str, expected: str) -> Attack:
        return self.attacks.setdefault(name, Attack(name, expected))


@dataclass
class Report:
    scenario: str
    duration: float
    stats: Stats
    lost: int

    @property
    def attacks_through(self) -> int:
        return sum(a.tried - a.stopped for a in self.stats.attacks.values())

    @property
    def ok(self) -> bool:
        """No honest message lost, no persistent session lost across a reconnect, no
        attack through, every revoked device stopped."""
        s = self.stats
        return (
            self.lost == 0
            and s.sessions_lost == 0
            and self.attacks_through == 0
            and s.revoked_stopped == s.revoked
        )

    def as_dict(self) -> dict[str, Any]:
        s = self.stats
        spread = _spread(s.refresh_times)
        return {
            "scenario": self.scenario,
            "duration_s": round(self.duration, 1),
            "devices": s.devices,
            "connects": {
                "ok": s.connects_ok,
                "refused": dict(s.refused),
                "sessions_lost": s.sessions_lost,
                "reconnects": s.reconnects.total(),
            },
            "messages": {
                "sent": s.sent,
                "delivered": s.delivered,
                "lost": self.lost,
                "duplicates": s.duplicates,
                "commands_sent": s.commands_sent,
                "commands_delivered": s.commands_delivered,
                "lost_sample": s.lost_sample,
            },
            "refreshes": s.refreshes,
            "reauthentications": s.reauthentications.total(),
            "protocols": {
                protocol: {
                    "devices": devices,
                    "reconnects": s.reconnects[protocol],
                    "reauthentications": s.reauthentications[protocol],
                }
                for protocol, devices in sorted(s.protocols.items())
            },
            "refresh_spread": spread,
            "honest_devices_stopped": dict(s.stopped),
            "latency_ms": {
                "first token": _ms(s.first_token_latency),
                "token": _ms(s.token_latency),
                "connect": _ms(s.connect_latency),
            },
            "revocation": {
                "revoked": s.revoked,
                "disconnected": len(s.revocation_latency),
                "stopped": s.revoked_stopped,
                "latency_ms": _ms(s.revocation_latency),
            },
            "attacks": {
                a.name: {
                    "expected": a.expected,
                    "tried": a.tried,
                    "stopped": a.stopped,
                    "answers": dict(a.answers),
                }
                for a in s.attacks.values()
            },
            "attacks_through": self.attacks_through,
            "ok": self.ok,
        }


def _spread(times: list[float]) -> dict[str, Any]:
    """How refreshes spread over the run: first, last and the busiest second."""
    if not times:
        return {"first_s": None, "last_s": None, "busiest_second": 0}
    per_second = Counter(int(t) for t in times)
    return {
        "first_s": round(min(times), 2),
        "last_s": round(max(times), 2),
        "busiest_second": max(per_second.values()),
    }
