"""The baseline for broker.py and memory.py: stock amqtt 0.12.1, anonymous access, no
other plugins. `start()` runs it as a process of its own on a free port."""

import asyncio
import logging
import subprocess
import sys

from amqtt.broker import Broker


def start(port: int) -> subprocess.Popen[bytes]:
    """The baseline broker in a process (and session) of its own, listening on `port`."""
    return subprocess.Popen([sys.executable, __file__, str(port)], start_new_session=True)


async def main(port: int) -> None:
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    broker = Broker(
        {
            "listeners": {
                "default": {"type": "tcp", "bind": f"127.0.0.1:{port}", "max_connections": 20000}
            },
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
