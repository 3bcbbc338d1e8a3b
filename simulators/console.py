"""The simulator's live progress line and its final report, drawn with rich."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.console import Console as RichConsole
from rich.live import Live
from rich.table import Table
from rich.text import Text


class Console:
    """Progress on stderr while the run lasts (only on a terminal); the report on stdout."""

    def __init__(self) -> None:
        self.err = RichConsole(stderr=True)
        self.out = RichConsole()
        self._live: Live | None = None

    def progress(self, figures: dict[str, object]) -> None:
        if not self.err.is_terminal:
            return
        table = Table.grid(padding=(0, 2))
        table.add_row(*(f"[bold]{name}[/] {_fmt(value)}" for name, value in figures.items()))
        if self._live is None:
            self._live = Live(table, console=self.err, refresh_per_second=4, transient=True)
            self._live.start()
        else:
            self._live.update(table)

    def done(self) -> None:
        if self._live is not None:
            self._live.stop()

    def report(self, report: dict[str, Any]) -> None:
        """The report as aligned "name  value" lines; `--json` keeps the machines' copy."""
        verdict = "[green]OK[/]" if report["ok"] else "[red]FAILED[/]"
        self.out.print(f"[bold]credbroker simulate: {report['scenario']}[/] {verdict}")
        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="bold", no_wrap=True)
        summary.add_column()
        for name, value in _summary(report):
            # Text, not markup: answers and device ids are data and may hold "[".
            summary.add_row(name, Text(value))
        self.out.print(summary)
        if report["attacks"]:
            self.out.print()
            self.out.print(_attacks(report["attacks"]))


def _summary(report: dict[str, Any]) -> Iterator[tuple[str, str]]:
    messages, latency, revocation = (
        report["messages"],
        report["latency_ms"],
        report["revocation"],
    )
    connects = report["connects"]
    yield "devices", str(report["devices"])
    yield "duration", f"{report['duration_s']} s"
    yield "connects", f"{connects['ok']} ok, " + _refused(connects["refused"])
    yield "sessions lost on reconnect", str(connects["sessions_lost"])
    yield (
        "messages",
        f"{messages['sent']} sent, {messages['delivered']} delivered, "
        f"{messages['lost']} lost, {messages['duplicates']} duplicates",
    )
    if messages["lost_sample"]:
        yield "lost (sample)", _counts(messages["lost_sample"])
    yield (
        "commands",
        f"{messages['commands_sent']} sent, {messages['commands_delivered']} delivered",
    )
    yield "refreshes", _refreshes(report["refreshes"], report["refresh_spread"])
    yield "reconnects", str(connects["reconnects"])
    yield "reauthentications", str(report["reauthentications"])
    if len(report["protocols"]) > 1:  # a mixed fleet: each half on its own
        yield "by protocol", _protocols(report["protocols"])
    for name in ("first token", "token", "connect"):
        if name != "first token" or latency[name]["n"]:  # only scenarios that time it
            yield f"{name} latency", _latency(latency[name])
    if revocation["revoked"]:
        yield (
            "revocation",
            f"{revocation['revoked']} revoked, {revocation['disconnected']} cut "
            f"({_latency(revocation['latency_ms'])}), {revocation['stopped']} stopped",
        )
    if report["honest_devices_stopped"]:
        yield "honest devices stopped", _counts(report["honest_devices_stopped"])
    if report["attacks"]:
        attacks = report["attacks"].values()
        tried, stopped = sum(a["tried"] for a in attacks), sum(a["stopped"] for a in attacks)
        yield "attacks", f"{tried} tried, {stopped} stopped"


def _protocols(protocols: dict[str, dict[str, int]]) -> str:
    return ", ".join(
        f"MQTT {name}: {p['devices']} devices, {p['reconnects']} reconnects, "
        f"{p['reauthentications']} reauthentications"
        for name, p in protocols.items()
    )


def _attacks(attacks: dict[str, dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2))
    table.add_column("attack")
    table.add_column("expected")
    table.add_column("tried", justify="right", no_wrap=True)
    table.add_column("stopped", justify="right", no_wrap=True)
    table.add_column("answers")
    for name, attack in attacks.items():
        table.add_row(
            Text(name),
            Text(attack["expected"]),
            str(attack["tried"]),
            str(attack["stopped"]),
            Text(_counts(attack["answers"])),
            style="" if attack["stopped"] == attack["tried"] else "red",
        )
    return table


def _counts(counted: dict[str, Any]) -> str:
    """{"4 bad credentials": 3} as "4 bad credentials: 3", never as a dict."""
    return ", ".join(f"{what}: {count}" for what, count in counted.items())


def _refused(refused: dict[str, int]) -> str:
    total = sum(refused.values())
    return f"{total} refused" + (f" ({_counts(refused)})" if refused else "")


def _refreshes(count: int, spread: dict[str, Any]) -> str:
    if not count:
        return "0"
    return (
        f"{count}, from {spread['first_s']} s to {spread['last_s']} s, "
        f"busiest second {spread['busiest_second']}"
    )


def _latency(figures: dict[str, Any]) -> str:
    if not figures["n"]:
        return "no samples"
    return f"p50 {figures['p50']} ms, p99 {figures['p99']} ms (n={figures['n']})"


def _fmt(value: object) -> str:
    return f"{value:.0f}s" if isinstance(value, float) else str(value)
