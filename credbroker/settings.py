"""What every server process reads from `CREDBROKER_*`: where the database is and how
tokens are checked. The API's settings (`provisioning.Settings`) and the standalone
broker's (`broker.settings.BrokerSettings`) extend it; neither reads the other's."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from credbroker.claims import DEFAULT_AUDIENCE


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDBROKER_", extra="ignore")

    host: str = "127.0.0.1"
    http_port: int = 8000
    data_dir: Path = Path("./credbroker-data")
    database_url: str | None = None
    issuer: str | None = Field(default=None, description="defaults to http(s)://HOST:HTTP_PORT")
    audience: str = DEFAULT_AUDIENCE
    leeway: int = Field(default=30, ge=0, le=300)

    @property
    def effective_issuer(self) -> str:
        if self.issuer:
            return self.issuer.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.https else "http"
        return f"{scheme}://{host}:{self.issuer_port}"

    @property
    def https(self) -> bool:
        """Whether the API speaks HTTPS (its settings say; a broker's do not)."""
        return False

    @property
    def issuer_port(self) -> int:
        """The port of the default issuer: the API's HTTPS one when it has one."""
        return self.http_port

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'credbroker.db').resolve()}"
