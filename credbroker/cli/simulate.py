"""`credbroker simulate`: a fleet of virtual devices, honest and hostile, with a report."""

from __future__ import annotations

import asyncio
import json
import resource
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated

import typer

from credbroker.cli.client import ApiOpt, KeyOpt
from simulators.scenarios import SCENARIOS

# Scenarios, from the one table (typer's help joins lines of an epilog: one per paragraph).
EPILOG = "Scenarios:\n\n" + "\n\n".join(f"{s.name}: {s.about}." for s in SCENARIOS.values())
ScenarioOpt = Annotated[
    str,
    typer.Option(
        "--scenario",
        envvar="CREDBROKER_SCENARIO",
        help=" | ".join(SCENARIOS),
    ),
]


def simulate(
    embedded: Annotated[
        bool,
        typer.Option("--embedded", envvar="CREDBROKER_EMBEDDED", help="start a stack for the run"),
    ] = False,
    api: ApiOpt = "http://127.0.0.1:8000",
    mqtt: Annotated[str, typer.Option("--mqtt", envvar="CREDBROKER_MQTT", help="HOST:PORT")] = (
        "127.0.0.1:1883"
    ),
    admin_key: KeyOpt = None,
    devices: Annotated[int, typer.Option("--devices", envvar="CREDBROKER_DEVICES", min=1)] = 100,
    duration: Annotated[
        float, typer.Option("--duration", envvar="CREDBROKER_DURATION", min=1)
    ] = 60.0,
    scenario: ScenarioOpt = "telemetry",
    token_ttl: Annotated[
        int, typer.Option("--token-ttl", envvar="CREDBROKER_TOKEN_TTL", min=1, max=86400)
    ] = 60,
    rate: Annotated[
        float, typer.Option("--rate", envvar="CREDBROKER_RATE", min=0.001, help="messages/s")
    ] = 0.2,
    revoke_share: Annotated[
        float, typer.Option("--revoke-share", envvar="CREDBROKER_REVOKE_SHARE", min=0, max=1)
    ] = 0.1,
    leeway: Annotated[
        float,
        typer.Option("--leeway", envvar="CREDBROKER_LEEWAY", help="the target stack's leeway"),
    ] = 30.0,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            envvar="CREDBROKER_PROTOCOL",
            help="MQTT version of the devices: 3.1.1 | 5 | mixed (every other device on 5)",
        ),
    ] = "3.1.1",
    json_out: Annotated[
        Path | None, typer.Option("--json", envvar="CREDBROKER_JSON", help="write the report")
    ] = None,
) -> None:
    """Provision DEVICES virtual devices and run a scenario for DURATION seconds.

    Exit status 1 if an honest QoS 1 message was lost, an attack got through, or a
    revoked device kept going.
    """
    from simulators.embedded import embedded_stack
    from simulators.run import PROTOCOLS, Options, Target
    from simulators.run import simulate as run_simulation

    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"one of {', '.join(PROTOCOLS)}", param_hint="--protocol")
    if not embedded and not admin_key:
        raise typer.BadParameter("pass --admin-key (or --embedded)", param_hint="--admin-key")
    host, _, port = mqtt.rpartition(":")
    if not embedded and (not host or not port.isdigit()):
        raise typer.BadParameter("HOST:PORT", param_hint="--mqtt")
    _raise_file_limit()
    options = Options(
        scenario=SCENARIOS[scenario],  # checked above
        devices=devices,
        duration=duration,
        rate=rate,
        token_ttl=token_ttl,
        revoke_share=revoke_share,
        protocol=protocol,
    )
    stack: AbstractContextManager[Target] = (
        embedded_stack()
        if embedded
        else nullcontext(Target(api, host, int(port), admin_key or "", leeway=leeway))
    )
    from simulators.console import Console

    console = Console()
    with stack as target:
        report = asyncio.run(run_simulation(target, options, console.progress))
    console.done()
    result = report.as_dict()
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    console.report(result)
    raise typer.Exit(0 if report.ok else 1)


def _raise_file_limit() -> None:
    """A socket per device: lift the soft limit on open files to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
