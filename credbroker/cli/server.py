"""`credbroker up` (the embedded stack), `credbroker api` and `credbroker broker`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

HostOpt = Annotated[str, typer.Option("--host", envvar="CREDBROKER_HOST")]
HttpPortOpt = Annotated[int, typer.Option("--http-port", envvar="CREDBROKER_HTTP_PORT")]
MqttPortOpt = Annotated[int, typer.Option("--mqtt-port", envvar="CREDBROKER_MQTT_PORT")]
HttpsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--https-port",
        envvar="CREDBROKER_HTTPS_PORT",
        help="HTTPS beside plain HTTP (needs --tls-cert and --tls-key; without it they make "
        "--http-port HTTPS)",
    ),
]
MqttsPortOpt = Annotated[
    int | None, typer.Option("--mqtts-port", envvar="CREDBROKER_MQTTS_PORT", help="MQTT over TLS")
]
CertOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        envvar="CREDBROKER_TLS_CERT",
        help="certificate (PEM) of the HTTPS and MQTTS listeners; `credbroker certs` makes one",
    ),
]
KeyOpt = Annotated[
    Path | None, typer.Option("--tls-key", envvar="CREDBROKER_TLS_KEY", help="its private key")
]
ClientCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--client-ca",
        envvar="CREDBROKER_TLS_CLIENT_CA",
        help="CA certificates (PEM) of client certificates, optional on HTTPS and MQTTS",
    ),
]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", envvar="CREDBROKER_DATA_DIR")]
HeaderTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--http-header-timeout",
        envvar="CREDBROKER_HTTP_HEADER_TIMEOUT",
        min=0.001,
        max=3600,
        help="seconds a connection has to send its request (then 408, closed)",
    ),
]
QueuedOpt = Annotated[
    int,
    typer.Option(
        "--max-queued-messages",
        envvar="CREDBROKER_MAX_QUEUED_MESSAGES",
        min=1,
        help="QoS 1 and 2 messages kept per offline persistent session; the oldest go first",
    ),
]
MAX_QUEUED_MESSAGES = 1000  # broker.delivery.MAX_QUEUED_MESSAGES (not imported at start-up)


def up(
    host: HostOpt = "127.0.0.1",
    http_port: HttpPortOpt = 8000,
    https_port: HttpsPortOpt = None,
    mqtt_port: MqttPortOpt = 1883,
    mqtts_port: MqttsPortOpt = None,
    tls_cert: CertOpt = None,
    tls_key: KeyOpt = None,
    client_ca: ClientCaOpt = None,
    data_dir: DataDirOpt = Path("./credbroker-data"),
    http_header_timeout: HeaderTimeoutOpt = 10.0,
    max_queued_messages: QueuedOpt = MAX_QUEUED_MESSAGES,
) -> None:
    """Run the embedded stack in one process and one event loop: API and MQTT broker,
    state in SQLite in DATA_DIR. With --tls-cert and --tls-key the API speaks HTTPS (on
    --https-port, or on --http-port in place of HTTP)."""
    from broker.factory import Listeners
    from credbroker.cli.lifecycle import check_tls
    from credbroker.cli.stack import run_embedded
    from provisioning import Settings

    check_tls(tls_cert, tls_key, client_ca, https_port)
    settings = Settings(
        host=host,
        http_port=http_port,
        https_port=https_port,
        data_dir=data_dir,
        http_header_timeout=http_header_timeout,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=client_ca,
    )
    listeners = Listeners(
        host=host,
        mqtt_port=mqtt_port,
        mqtts_port=mqtts_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_ca=client_ca,
    )
    asyncio.run(run_embedded(settings, listeners, max_queued_messages=max_queued_messages))


def api(
    host: HostOpt = "127.0.0.1",
    http_port: HttpPortOpt = 8000,
    https_port: HttpsPortOpt = None,
    data_dir: DataDirOpt = Path("./credbroker-data"),
    workers: Annotated[
        int, typer.Option("--workers", envvar="CREDBROKER_WORKERS", min=1, help="processes")
    ] = 1,
    http_header_timeout: HeaderTimeoutOpt = 10.0,
    tls_cert: CertOpt = None,
    tls_key: KeyOpt = None,
    client_ca: ClientCaOpt = None,
) -> None:
    """Run the API alone (scaled shape: point CREDBROKER_DATABASE_URL at PostgreSQL).
    With --workers N, N stateless processes share the port; with --tls-cert and
    --tls-key it speaks HTTPS (on --https-port, or on --http-port in place of HTTP)."""
    from credbroker.cli.lifecycle import check_tls
    from credbroker.cli.stack import run_api, run_api_workers
    from provisioning import Settings

    check_tls(tls_cert, tls_key, client_ca, https_port)
    if workers > 1 and https_port is not None:
        typer.echo(
            "error: --workers serve one port: give --tls-cert and --tls-key without "
            "--https-port to make it HTTPS",
            err=True,
        )
        raise typer.Exit(2)
    settings = Settings(
        host=host,
        http_port=http_port,
        https_port=https_port,
        data_dir=data_dir,
        http_header_timeout=http_header_timeout,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=client_ca,
    )
    if workers > 1:
        run_api_workers(settings, workers)
    else:
        asyncio.run(run_api(settings))


def broker(
    host: HostOpt = "127.0.0.1",
    mqtt_port: MqttPortOpt = 1883,
    mqtts_port: MqttsPortOpt = None,
    tls_cert: CertOpt = None,
    tls_key: KeyOpt = None,
    client_ca: ClientCaOpt = None,
    data_dir: DataDirOpt = Path("./credbroker-data"),
    max_queued_messages: QueuedOpt = MAX_QUEUED_MESSAGES,
) -> None:
    """Run a standalone MQTT broker on the API's database (CREDBROKER_DATABASE_URL); set
    CREDBROKER_ISSUER to the API's issuer. Learns revocations within 2 seconds."""
    from broker.factory import Listeners
    from broker.settings import BrokerSettings
    from credbroker.cli.lifecycle import check_tls
    from credbroker.cli.standalone import run_broker

    check_tls(tls_cert, tls_key, client_ca)
    settings = BrokerSettings(host=host, data_dir=data_dir)
    listeners = Listeners(
        host=host,
        mqtt_port=mqtt_port,
        mqtts_port=mqtts_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_ca=client_ca,
    )
    asyncio.run(run_broker(settings, listeners, max_queued_messages=max_queued_messages))
