"""The Eclipse Paho MQTT 3.1.1 interoperability client test, vendored (see README.md)."""
