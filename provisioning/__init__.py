"""The provisioning API: fleets, devices, keys, tokens, revocation, audit.

`create_app(settings)` builds the FastAPI application; `get_settings()` reads
`CREDBROKER_*` from the environment.
"""

from provisioning.app import create_app
from provisioning.settings import Settings, get_settings

__all__ = ["Settings", "create_app", "get_settings"]
