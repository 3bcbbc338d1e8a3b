"""MQTT broker side of credbroker (amqtt auth plugin); arrives with the broker issue."""
