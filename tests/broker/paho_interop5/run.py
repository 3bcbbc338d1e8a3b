"""Upstream tests of client_test5.py, in a process of their own (test_paho_interop5.py).

Its settings come as JSON on stdin: the broker's host and port, the filter the broker
must refuse, the clean-up client id and the MQTT password (an access token) of each
client id. It runs the tests named on its command line as upstream runs its suite, in
one process, prints unittest's report, and last a line of JSON: each test's failure
report, or null if it passed. A process of its own, because an upstream test may wait
without end for what a broker lacks (test_flow_control2 reads until a DISCONNECT 0x93
comes), and a process can be stopped.
"""

from __future__ import annotations

import json
import sys
import unittest
import warnings

from . import client_test5 as upstream


def main(names: list[str]) -> int:
    settings = json.load(sys.stdin)
    tokens: dict[str, str] = settings["tokens"]

    def credentials(client_id: str) -> tuple[str | None, bytes | None]:
        token = tokens.get(client_id)
        return (client_id, token.encode()) if token else (None, None)

    upstream.host, upstream.port = settings["host"], settings["port"]
    upstream.nosubscribe_topics = (settings["nosubscribe"],)
    upstream.cleanup_clientid = settings["cleanup_clientid"]
    upstream.credentials = credentials
    suite = unittest.TestSuite(upstream.Test(name) for name in names)  # one class set-up
    with warnings.catch_warnings():
        # Upstream's tests return their verdict too (Python 3.11 warns; not our concern).
        warnings.filterwarnings("ignore", "It is deprecated to return a value", DeprecationWarning)
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = {test.id().rsplit(".", 1)[-1]: report for test, report in result.failures}
    failed |= {test.id().rsplit(".", 1)[-1]: report for test, report in result.errors}
    print(json.dumps({name: failed.get(name) for name in names}))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
