"""Prometheus metrics of the broker; in the embedded shape they join the API's /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BrokerStats:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.connects = Counter(
            "credbroker_mqtt_connects",
            "MQTT CONNECTs by result and reason",
            ["result", "reason"],
            registry=registry,
        )
        self.refused = Counter(
            "credbroker_mqtt_refused",
            "PUBLISH and SUBSCRIBE refused by the ACL",
            ["packet"],
            registry=registry,
        )
        self.kicks = Counter(
            "credbroker_mqtt_kicks",
            "Sessions cut by the broker, by reason",
            ["reason"],
            registry=registry,
        )
        self.verify_seconds = Histogram(
            "credbroker_mqtt_connect_verify_seconds",
            "Token verification time per CONNECT",
            registry=registry,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
        )
        self.dropped = Counter(
            "credbroker_mqtt_dropped_connections",
            "Connections closed by the broker for a bad CONNECT (too large, too slow, not "
            "MQTT 3.1.1) or a protocol violation (MQTT 3.1.1 section 4.8), by reason",
            ["reason"],
            registry=registry,
        )
        self.queue_dropped = Counter(
            "credbroker_mqtt_queue_dropped",
            "QoS 1 and 2 messages dropped, oldest first, from a full offline session queue",
            registry=registry,
        )
        self.sessions = Gauge(
            "credbroker_mqtt_sessions",
            "Sessions held by the broker, by state",
            ["state"],
            registry=registry,
        )
