"""Getting tokens as a device: client assertion or refresh grant, clock skew from the
server's `Date`, and the refresh token persisted atomically across reboots."""

from __future__ import annotations

import email.utils
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_sdk._assertion import assertion_form
from device_sdk._errors import DeviceRevoked, TokenError
from device_sdk._keys import DevicePrivateKey

REFRESH_FILE = "refresh_token"


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int
    obtained_at: float  # time.monotonic() when it arrived


class TokenSource:
    """Args:
    api_url: base URL of the credbroker API.
    device_id: this device's id.
    private_key: the device key that signs client assertions.
    state_dir: where the refresh token is kept (None: memory only).
    timeout: seconds per HTTP request.
    """

    def __init__(
        self,
        *,
        api_url: str,
        device_id: str,
        private_key: DevicePrivateKey,
        state_dir: str | Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.device_id = device_id
        self.private_key = private_key
        self.state_dir = Path(state_dir) if state_dir else None
        self.timeout = timeout
        self.skew = 0.0  # server clock minus ours, learnt from Date headers
        self._refresh: str | None = self._load_refresh()

    @property
    def token_endpoint(self) -> str:
        return self.api_url + "/oauth2/token"

    def fetch(self) -> Token:
        """A fresh access token: the refresh grant if we hold one, else an assertion."""
        if self._refresh:
            try:
                return self._grant({"grant_type": "refresh_token", "refresh_token": self._refresh})
            except TokenError as exc:
                if exc.status is None or exc.status >= 500 or exc.status == 429:
                    raise
                self._store_refresh(None)  # refused: fall back to the device key
        form = assertion_form(
            self.private_key,
            device_id=self.device_id,
            audience=self.token_endpoint,
            now=time.time() + self.skew,
        )
        return self._grant(form)

    def _grant(self, form: dict[str, str]) -> Token:
        request = urllib.request.Request(  # noqa: S310 - the operator configures the URL
            self.token_endpoint,
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                self._learn_skew(response.headers.get("Date"))
                body: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            self._learn_skew(exc.headers.get("Date"))
            raise self._refusal(exc) from exc
        except (OSError, ValueError) as exc:
            raise TokenError(f"token endpoint unreachable: {exc}") from exc
        self._store_refresh(body.get("refresh_token"))
        return Token(body["access_token"], int(body["expires_in"]), time.monotonic())

    def _refusal(self, exc: urllib.error.HTTPError) -> TokenError:
        try:
            error = json.loads(exc.read()).get("error", "")
        except ValueError:
            error = ""
        retry = exc.headers.get("Retry-After")
        retry_after = float(retry) if retry and retry.isdigit() else None
        kind = DeviceRevoked if error == "invalid_client" else TokenError
        return kind(
            f"token endpoint said {exc.code} {error}", status=exc.code, retry_after=retry_after
        )

    def _learn_skew(self, date: str | None) -> None:
        if date:
            try:
                server = email.utils.parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                return
            self.skew = server - time.time()

    def _load_refresh(self) -> str | None:
        if self.state_dir is None or not (self.state_dir / REFRESH_FILE).exists():
            return None
        return (self.state_dir / REFRESH_FILE).read_text().strip() or None

    def _store_refresh(self, token: str | None) -> None:
        """Write, fsync, rename: a reboot finds the old token or the new one, never half."""
        self._refresh = token
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        final, partial = self.state_dir / REFRESH_FILE, self.state_dir / (REFRESH_FILE + ".new")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token or "")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
