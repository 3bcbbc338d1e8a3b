"""The API as an application factory for uvicorn's worker processes
(`credbroker api --workers N`): settings come from the CREDBROKER_* environment."""

from __future__ import annotations

from fastapi import FastAPI

from credbroker import heap
from provisioning.app import create_app
from provisioning.settings import Settings


def app() -> FastAPI:
    application = create_app(Settings())
    heap.settle()  # a worker serves next
    return application
