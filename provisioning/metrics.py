"""Prometheus metrics, on a registry of this application's own (tests build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tokens = Counter(
            "credbroker_token_requests",
            'Token endpoint requests by grant and result; grant "revoke": revocation'
            " requests that authenticate a client",
            ["grant", "result"],
            registry=self.registry,
        )
        self.token_seconds = Histogram(
            "credbroker_token_seconds",
            "Token endpoint processing time",
            ["grant"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        )
        self.revocations = Counter(
            "credbroker_revocations",
            "Revocations by kind",
            ["kind"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
