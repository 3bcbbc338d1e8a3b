"""`credbroker keygen`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class KeyAlg(StrEnum):
    ed25519 = "ed25519"
    es256 = "es256"


def keygen(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="directory for device.key and device.pub", envvar="CREDBROKER_KEYS_OUT"
        ),
    ],
    alg: Annotated[KeyAlg, typer.Option("--alg", envvar="CREDBROKER_ALG")] = KeyAlg.ed25519,
    force: Annotated[
        bool, typer.Option("--force", help="overwrite a key pair already in --out")
    ] = False,
) -> None:
    """Make a device key pair: device.key (private, mode 0600) and device.pub."""
    from device_sdk import generate_key, save_key_pair
    from device_sdk._keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE

    existing = [out / name for name in (PRIVATE_KEY_FILE, PUBLIC_KEY_FILE) if (out / name).exists()]
    if existing and not force:
        # A device's key is its identity: losing it to a typo is not undone.
        typer.echo(f"error: {existing[0]} exists; pass --force to replace the key pair", err=True)
        raise typer.Exit(1)
    private_path, public_path = save_key_pair(generate_key(alg.value), out)
    typer.echo(f"private key: {private_path}\npublic key:  {public_path}")
