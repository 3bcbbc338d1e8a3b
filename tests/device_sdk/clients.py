"""A `DeviceClient` for a device of a test stack, as a device's firmware would make it."""

from __future__ import annotations

from typing import Any

from device_sdk import DeviceClient
from tests.stack import Device, Stack


def device_client(stack: Stack, device: Device, **kw: Any) -> DeviceClient:
    return DeviceClient(
        api_url=stack.base,
        device_id=device.id,
        private_key=device.key,
        mqtt_host="127.0.0.1",
        mqtt_port=stack.mqtt_port,
        **kw,
    )
