"""/oauth2/token throughput in the scaled shape: `credbroker api --workers 2` on PostgreSQL
(private_key_jwt with ES256 device keys, refresh) vs the bare FastAPI POST under the same
number of uvicorn workers, and vs each grant's floor (floor.py).

Makes a fresh database on the PostgreSQL server (`--server`, default the test suite's:
127.0.0.1:5432, trust auth) and drops it at the end. Starts the API with
CREDBROKER_DATABASE_URL pointing at it, one CREDBROKER_MASTER_KEY for all its workers and
the admin key in CREDBROKER_ADMIN_KEY; starts `benchmarks/bare_app.py` with the same
uvicorn worker count; then provisions devices, prepares single-use request bodies and
drives each endpoint with wrk as token_endpoint.py does (its functions, imported).

Neither server is pinned to a core (two workers pinned to one core would be one); wrk
is, to the second core when `taskset` exists, and PostgreSQL runs wherever the scheduler
puts it: on a 2-core machine the servers, the database and wrk share both cores. The
floor is floor.py's: the bare endpoint's time per request at this worker count plus the
raw signature time of the path, counted whole (as on one core), so with signatures
running in two workers at once it is a lenient floor.

    .venv/bin/python benchmarks/postgres.py [--seconds 8] [--connections 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from floor import crypto_costs, describe  # benchmarks/, the script's directory
from token_endpoint import (
    ADMIN,
    BIN,
    assertion_bodies,
    bare_command,
    free_port,
    print_table,
    provision,
    refresh_bodies,
    start,
    wrk,
)

from tests.databases import postgres_database

REFRESH_BODIES = 6000  # each costs a private_key_jwt grant to prepare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-rps", type=int, default=1500, help="bodies to prepare per second")
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cb-bench-pg-"))
    count = args.seconds * args.max_rps
    refresh_count = min(count, REFRESH_BODIES)
    port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    token_url = base + "/oauth2/token"
    with postgres_database(args.server) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
        env.update(
            CREDBROKER_DATABASE_URL=url,
            CREDBROKER_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            CREDBROKER_ADMIN_KEY=ADMIN,
        )
        api_command = [str(BIN / "credbroker"), "api", "--workers", str(args.workers)]
        api_command += ["--http-port", str(port), "--data-dir", str(work / "data")]
        servers: list[subprocess.Popen[bytes]] = []
        try:
            servers.append(start(api_command, env, base + "/healthz", cpu=None))
            bare = bare_command(bare_port, args.workers)
            servers.append(start(bare, env, f"http://127.0.0.1:{bare_port}/docs", cpu=None))
            devices = provision(base, "es256")
            refresh_bodies(devices, refresh_count, base, work / "refresh.txt")
            # Assertions live an hour, but are single use: made last, just before their run.
            assertion_bodies(devices, count, token_url, work / "es256.txt")
            bare_body = work / "bare.txt"
            bare_body.write_text((work / "es256.txt").read_text().splitlines()[0] + "\n")
            results = {
                "bare FastAPI POST": wrk(
                    f"http://127.0.0.1:{bare_port}/bare", bare_body, args.seconds, args.connections
                ),
                "private_key_jwt ES256": wrk(
                    token_url, work / "es256.txt", args.seconds, args.connections
                ),
                "refresh_token grant": wrk(
                    token_url,
                    work / "refresh.txt",
                    min(args.seconds, refresh_count // args.max_rps or 1),
                    args.connections,
                ),
            }
        finally:
            for proc in servers:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
            shutil.rmtree(work, ignore_errors=True)
    costs = crypto_costs()
    print(
        f"wrk -t1 -c{args.connections}, {args.workers} uvicorn workers each (uvloop, httptools),"
        " credbroker api on PostgreSQL"
    )
    print(f"raw cryptography: {describe(costs)}")
    print_table(results, costs, results["bare FastAPI POST"][0])


if __name__ == "__main__":
    main()
