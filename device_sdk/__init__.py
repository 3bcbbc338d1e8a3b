"""credbroker device SDK: keys, client assertions and (soon) a self-refreshing client.

Depends only on paho-mqtt, pyjwt, cryptography and the standard library.
"""

from device_sdk._assertion import assertion_form, client_assertion
from device_sdk._keys import generate_key, load_private_key, public_pem, save_key_pair

__all__ = [
    "assertion_form",
    "client_assertion",
    "generate_key",
    "load_private_key",
    "public_pem",
    "save_key_pair",
]
