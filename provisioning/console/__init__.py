"""The operator console at `/console`: server-rendered pages over the store, signed in
with an admin key exchanged for a session cookie (`signin`), every action CSRF-checked
(`pages`), every asset from our own origin."""

from provisioning.console import (  # noqa: F401 - their routes
    audit_page,
    fleets_page,
    pages,
    provision_page,
)
from provisioning.console.signin import prune
from provisioning.console.web import install

__all__ = ["install", "prune"]
