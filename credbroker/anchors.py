"""The fleet CAs this process's TLS listeners trust besides `--client-ca`.

Each CA known is loaded into every TLS context that verifies client certificates, so
that the handshake lets its certificates through and the application decides whose
they are. A process reads them at start and again every `REFRESH_EVERY` seconds (an id
query; the PEMs of new ones only), and adds those it registers or makes itself at once.
A CA removed stays trusted by the handshake until restart: the application refuses its
certificates (they name no device any more).
"""

from __future__ import annotations

import ssl
import threading

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from credbroker import certificates

REFRESH_EVERY = 10.0
_IDS = text("SELECT id FROM fleet_cas")
_NEW = text("SELECT certificate FROM fleet_cas WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


class TrustAnchors:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: list[ssl.SSLContext] = []
        self._ids: set[str] = set()
        self._pems: list[str] = []

    def watch(self, context: ssl.SSLContext) -> None:
        with self._lock:
            self._contexts.append(context)
            for pem in self._pems:
                context.load_verify_locations(cadata=pem)

    def add(self, pem: str) -> None:
        ca_id = certificates.x5t(certificates.load_pem(pem))
        with self._lock:
            if ca_id in self._ids:
                return
            self._ids.add(ca_id)
            self._pems.append(pem)
            for context in self._contexts:
                context.load_verify_locations(cadata=pem)

    def refresh(self, engine: Engine) -> None:
        """The CAs registered since, by any process; none before the API made its tables
        (a standalone broker may start first)."""
        try:
            with engine.connect() as conn:
                new = [row[0] for row in conn.execute(_IDS) if row[0] not in self._ids]
                pems = [row[0] for row in conn.execute(_NEW, {"ids": new})] if new else []
        except SQLAlchemyError:
            return  # the next round asks again
        for pem in pems:
            self.add(pem)
