"""credbroker: a credential broker for IoT fleets on MQTT.

This package holds what every part shares and nothing heavy: the claim contract
(`claims`), MQTT topic semantics (`topics`), compact JWS handling (`jws`), the access
token verifier (`verifier`) and the command line (`cli`, imported lazily).
"""

__version__ = "0.1.0"
