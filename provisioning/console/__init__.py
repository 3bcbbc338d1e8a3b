"""The operator console at `/console`: server-rendered pages over the store, signed in
with an admin key exchanged for a session cookie (`signin`), every action CSRF-checked
(`pages`), every asset from our own origin."""

from provisioning.console.pages import install
from provisioning.console.signin import prune

__all__ = ["install", "prune"]
