"""The standalone broker's settings (`credbroker broker`): the common ones, nothing of
the API's. Its flags (ports, TLS, queue bound) come from the command line."""

from __future__ import annotations

from credbroker.settings import CommonSettings


class BrokerSettings(CommonSettings):
    """`CREDBROKER_DATABASE_URL` (the API's database), `CREDBROKER_ISSUER` (the API's
    issuer), `CREDBROKER_AUDIENCE`, `CREDBROKER_LEEWAY`."""
