"""credbroker device SDK: keys, client assertions and a self-refreshing MQTT client.

Depends only on paho-mqtt, pyjwt, cryptography and the standard library.
"""

from device_sdk._assertion import assertion_form, client_assertion
from device_sdk._client import DeviceClient
from device_sdk._errors import (
    ConnectError,
    DeviceRevoked,
    DeviceSDKError,
    EnrollmentError,
    SubscriptionRefused,
    TokenError,
)
from device_sdk._keys import generate_key, load_private_key, public_pem, save_key_pair
from device_sdk._policy import Backoff, Policy
from device_sdk._proof import password_with_proof, proof_of_possession
from device_sdk._subscriptions import Subscription

__all__ = [
    "Backoff",
    "ConnectError",
    "DeviceClient",
    "DeviceRevoked",
    "DeviceSDKError",
    "EnrollmentError",
    "Policy",
    "Subscription",
    "SubscriptionRefused",
    "TokenError",
    "assertion_form",
    "client_assertion",
    "generate_key",
    "load_private_key",
    "password_with_proof",
    "proof_of_possession",
    "public_pem",
    "save_key_pair",
]
