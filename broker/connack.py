"""The decision's refusals as MQTT 3.1.1 CONNACK return codes (DESIGN.md, MQTT contract).

A penalty is "try later" (3), never "bad credentials" (4): a device told 4 or 5 renews
its token once and then stops, so a penalty earned by someone else's guesses would keep
it offline.
"""

from __future__ import annotations

from credbroker.decision import Kind

ACCEPTED = 0
UNACCEPTABLE_PROTOCOL = 1
SERVER_UNAVAILABLE = 3
BAD_CREDENTIALS = 4
NOT_AUTHORIZED = 5

RETURN_CODES = {
    Kind.BAD_CREDENTIALS: BAD_CREDENTIALS,
    Kind.NOT_AUTHORIZED: NOT_AUTHORIZED,
    Kind.UNAVAILABLE: SERVER_UNAVAILABLE,
    Kind.TRY_LATER: SERVER_UNAVAILABLE,
}
