"""Getting tokens as a device: client assertion or refresh grant, clock skew from the
server's `Date`, and the refresh token persisted atomically across reboots.

When the server's metadata (RFC 8414) lists the key's algorithm in
`dpop_signing_alg_values_supported`, every token request carries a DPoP proof signed
with the device key (RFC 9449): the server binds the refresh token to the key. No
`DPoP-Nonce` (section 8): the server asks for none.

`TokenSource.fetch()` does the HTTP with urllib. The decisions (which grant to try, what
an answer means) live in `forms()` and `accept()`, so a caller with its own HTTP client
(the simulators use one asyncio loop for thousands of devices) follows the same rules.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_sdk._assertion import assertion_form
from device_sdk._dpop import algorithm, dpop_proof
from device_sdk._errors import DeviceRevoked, EnrollmentError, TokenError
from device_sdk._keys import DevicePrivateKey, public_pem

REFRESH_FILE = "refresh_token"
METADATA_PATH = "/.well-known/oauth-authorization-server"
CLOCK_CORRECTION = 10.0  # seconds of newly learnt skew worth a second assertion
# Refusals that mean this device will not get a token however often it asks.
FINAL_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant"})


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int
    obtained_at: float  # time.monotonic() when it arrived

    @property
    def expires_at(self) -> float:
        """On the monotonic clock."""
        return self.obtained_at + self.expires_in

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at


class TokenSource:
    """Args:
    api_url: base URL of the credbroker API.
    device_id: this device's id.
    private_key: the device key that signs client assertions; None: the client
        certificate of `tls` authenticates the device (RFC 8705 tls_client_auth and
        self_signed_tls_client_auth).
    state_dir: where the refresh token is kept (None: memory only).
    timeout: seconds per HTTP request.
    """

    def __init__(
        self,
        *,
        api_url: str,
        device_id: str,
        private_key: DevicePrivateKey | None,
        state_dir: str | Path | None = None,
        timeout: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if private_key is None and tls is None:
            raise ValueError("a device needs a private key or a TLS client certificate")
        self.api_url = api_url.rstrip("/")
        self.tls = tls  # for an https:// API_URL; None: the system's CA certificates
        self.device_id = device_id
        self.private_key = private_key
        self.state_dir = Path(state_dir) if state_dir else None
        self.timeout = timeout
        self.skew = 0.0  # server clock minus ours, learnt from Date headers
        self._refresh: str | None = self._load_refresh()
        self._discovered = False
        self._dpop_htu: str | None = None  # the token endpoint, as proofs name it

    @property
    def token_endpoint(self) -> str:
        return self.api_url + "/oauth2/token"

    def fetch(self) -> Token:
        """A fresh access token: the refresh grant if we hold one, else an assertion."""
        if not self.discovered:
            self.discover()
        for form in self.forms():
            answer = _post_form(
                self.token_endpoint, form, self.timeout, self.tls, self.proof_headers()
            )
            token = self.accept(form, *answer)
            if token is not None:
                return token
        raise TokenError("token endpoint refused every grant")

    @property
    def metadata_url(self) -> str:
        return self.api_url + METADATA_PATH

    def discover(self) -> None:
        """Read the server's metadata (RFC 8414): does it take DPoP proofs by our key?"""
        status, _, body = _request("GET", self.metadata_url, None, {}, self.timeout, self.tls)
        self.learn_metadata(status, body)

    def enroll(self, enrollment_token: str) -> str:
        """Register this device's public key with a single-use enrollment token."""
        if self.private_key is None:
            raise EnrollmentError("enrollment registers a private key's public half")
        body = json.dumps(
            {"enrollment_token": enrollment_token, "public_key": public_pem(self.private_key)}
        ).encode()
        status, _, answer = _post(
            self.api_url + "/v1/enroll", body, "application/json", self.timeout, self.tls
        )
        if status != 201:
            detail = _json(answer).get("detail", "")
            raise EnrollmentError(f"enrollment refused: {status} {detail}", status=status)
        return str(_json(answer)["device_id"])

    # -- the rules, without I/O -----------------------------------------------------------

    @property
    def discovered(self) -> bool:
        """Whether the metadata has been read (`discover`, or `learn_metadata`)."""
        return self._discovered

    @property
    def dpop(self) -> bool:
        """Whether token requests carry DPoP proofs (known once discovered)."""
        return self._dpop_htu is not None

    def proof_headers(self) -> dict[str, str]:
        """The headers of one token request: a fresh DPoP proof if the server takes one,
        dated on the server's clock as far as we know it."""
        if self._dpop_htu is None or self.private_key is None:
            return {}
        now = time.time() + self.skew
        return {"DPoP": dpop_proof(self.private_key, htm="POST", htu=self._dpop_htu, now=now)}

    def learn_metadata(self, status: int, body: bytes) -> None:
        """The answer to `GET metadata_url`: DPoP proofs from now on if the server lists
        our key's algorithm in `dpop_signing_alg_values_supported`. A 5xx is asked again
        at the next fetch; any other answer without that list means no DPoP."""
        if status >= 500:
            return
        self._discovered = True
        metadata = _json(body) if status == 200 else {}
        algs = metadata.get("dpop_signing_alg_values_supported")
        key = self.private_key  # None: a certificate device, its TLS key does not sign
        if key is not None and isinstance(algs, list) and algorithm(key) in algs:
            endpoint = metadata.get("token_endpoint")  # what the server calls itself: htu
            self._dpop_htu = endpoint if isinstance(endpoint, str) else self.token_endpoint

    def forms(self) -> Iterator[dict[str, str]]:
        """The grant requests to try in order, until one is accepted."""
        if self._refresh:
            yield {"grant_type": "refresh_token", "refresh_token": self._refresh}
        yield self._assertion()
        yield self._assertion()  # only reached when a refusal taught us the server's clock

    def accept(
        self, form: Mapping[str, str], status: int, headers: Mapping[str, str], body: bytes
    ) -> Token | None:
        """The token in an answer; None to try the next form; TokenError to give up.

        `headers` is looked up with lower-case names.
        """
        skew_before = self.skew
        self._learn_skew(headers.get("date"))
        if status == 200:
            answer = _json(body)
            self._store_refresh(answer.get("refresh_token"))
            return Token(answer["access_token"], int(answer["expires_in"]), time.monotonic())
        error = str(_json(body).get("error", ""))
        retry = headers.get("retry-after", "")
        refusal = TokenError(
            f"token endpoint said {status} {error}".strip(),
            status=status,
            retry_after=float(retry) if retry.isdigit() else None,
        )
        if refusal.transient:  # a 429 names what failed too: it is still only "later"
            raise refusal
        if error in FINAL_ERRORS:
            refusal = DeviceRevoked(str(refusal), status=status)
        if form.get("grant_type") == "refresh_token":
            self._store_refresh(None)  # refused: fall back to the device key
            return None
        if abs(self.skew - skew_before) > CLOCK_CORRECTION:
            return None  # our clock was off: sign again with the server's time
        raise refusal

    def _assertion(self) -> dict[str, str]:
        if self.private_key is None:  # the TLS client certificate authenticates
            return {"grant_type": "client_credentials", "client_id": self.device_id}
        return assertion_form(
            self.private_key,
            device_id=self.device_id,
            audience=self.token_endpoint,
            now=time.time() + self.skew,
        )

    def _learn_skew(self, date: str | None) -> None:
        if date:
            try:
                server = email.utils.parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                return
            self.skew = server - time.time()

    # -- the refresh token on disk --------------------------------------------------------

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


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _post_form(
    url: str,
    form: Mapping[str, str],
    timeout: float,
    tls: ssl.SSLContext | None,
    headers: Mapping[str, str],
) -> tuple[int, Mapping[str, str], bytes]:
    body = urllib.parse.urlencode(form).encode()
    return _post(url, body, "application/x-www-form-urlencoded", timeout, tls, headers)


def _user_agent() -> str:
    """`credbroker-device-sdk/<version>`: the broker shows it with the device's sessions."""
    try:
        version = importlib.metadata.version("credbroker")
    except importlib.metadata.PackageNotFoundError:  # vendored without its metadata
        version = "unknown"
    return f"credbroker-device-sdk/{version}"


USER_AGENT = _user_agent()


def _post(
    url: str,
    body: bytes,
    content_type: str,
    timeout: float,
    tls: ssl.SSLContext | None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    """(status, headers, body) of a POST; TokenError only when there is no answer."""
    sent = {"Content-Type": content_type, **(headers or {})}
    return _request("POST", url, body, sent, timeout, tls)


def _request(
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    tls: ssl.SSLContext | None,
) -> tuple[int, Mapping[str, str], bytes]:
    """(status, headers, body) of a request; TokenError only when there is no answer."""
    request = urllib.request.Request(  # noqa: S310 - the operator configures the URL
        url, data=body, method=method, headers={"User-Agent": USER_AGENT, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=tls) as response:  # noqa: S310
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers.items()), exc.read()
    except OSError as exc:
        raise TokenError(f"{url} unreachable: {exc}") from exc


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}
