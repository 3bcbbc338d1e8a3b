"""The Eclipse Paho MQTT 5.0 interoperability client test, vendored (see README.md)."""
