"""What the operator commands share: where the API is, the admin key, one request with
its errors as one line on stderr, every page of a list, and the output (`--json`, or an
aligned table for people)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

ApiOpt = Annotated[str, typer.Option("--api", envvar="CREDBROKER_API", help="API base URL")]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        envvar="CREDBROKER_ADMIN_KEY",
        show_default=False,
        help="admin API key (default: DATA_DIR/admin.key)",
    ),
]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", envvar="CREDBROKER_DATA_DIR")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]
DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_DATA = Path("./credbroker-data")


def resolve_key(key: str | None, data_dir: Path) -> str:
    if key:
        return key
    path = data_dir / "admin.key"
    if path.exists():
        return path.read_text().strip()
    fail(
        f"no admin key: {path} does not exist; pass --admin-key, set CREDBROKER_ADMIN_KEY, "
        "or point --data-dir (CREDBROKER_DATA_DIR) at the stack's data directory"
    )


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}")


def call(
    method: str,
    api: str,
    path: str,
    *,
    key: str | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """The API's JSON answer; an error answer is one line on stderr and exit status 1
    (2 when the API cannot be reached)."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    query = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        response = httpx.request(
            method,
            api.rstrip("/") + path,
            headers=headers,
            json=json_body,
            data=form,
            params=query,
            timeout=30,
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {api}: {exc}", 2)
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = None
    if response.is_error:
        fail(describe_error(response.status_code, body))
    return body


def describe_error(status: int, body: Any) -> str:
    """problem+json (`error`, `detail`) or RFC 6749 (`error`, `error_description`)."""
    if not isinstance(body, dict):
        return f"HTTP {status}"
    code = body.get("error") or body.get("title") or "error"
    detail = body.get("detail") or body.get("error_description") or ""
    issues = body.get("errors") or []
    if issues and isinstance(issues[0], dict):  # a 422: say which field, and why
        first = issues[0]
        where = ".".join(str(p) for p in first.get("loc", []))
        detail = f"{where}: {first.get('msg', '')}"
    line = f"HTTP {status} {code}" + (f": {detail}" if detail else "")
    return " ".join(line.split())  # one line, whatever the server put in it


def every_page(api: str, path: str, *, key: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Every item of a list endpoint, following `next_cursor`."""
    items: list[Any] = []
    cursor = None
    while True:
        page = call("GET", api, path, key=key, params={**(params or {}), "cursor": cursor})
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def print_json(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2))


Column = tuple[str, Callable[[dict[str, Any]], Any]]


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Rows as text columns aligned on the widest cell, under a header."""
    cells = [[header for header, _ in columns]]
    cells += [[text(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(line[n]) for line in cells) for n in range(len(columns))]
    for line in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def print_fields(body: dict[str, Any], fields: Sequence[Column]) -> None:
    """One record as `name  value` lines."""
    width = max(len(name) for name, _ in fields)
    for name, get in fields:
        typer.echo(f"{name.ljust(width)}  {text(get(body))}".rstrip())


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(text(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return " ".join(str(value).split())  # no cell may break a line


def when(value: float | None) -> str | None:
    """A Unix time as UTC ISO 8601, to the second."""
    if value is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(name)


def time_field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: when(row.get(name))
