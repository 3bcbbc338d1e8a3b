"""The decision's refusals as MQTT 3.1.1 CONNACK return codes and MQTT 5.0 reason codes
(DESIGN.md, MQTT contract and MQTT 5).

A penalty is "try later" (3), never "bad credentials" (4): a device told 4 or 5 renews
its token once and then stops, so a penalty earned by someone else's guesses would keep
it offline.
"""

from __future__ import annotations

import mqtt5

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

# MQTT 5.0 can tell a penalty apart: 0x9F, connection rate exceeded.
REASON_CODES = {
    Kind.BAD_CREDENTIALS: mqtt5.ConnAckReasonCode.BAD_USER_NAME_OR_PASSWORD,
    Kind.NOT_AUTHORIZED: mqtt5.ConnAckReasonCode.NOT_AUTHORIZED,
    Kind.UNAVAILABLE: mqtt5.ConnAckReasonCode.SERVER_UNAVAILABLE,
    Kind.TRY_LATER: mqtt5.ConnAckReasonCode.CONNECTION_RATE_EXCEEDED,
}
