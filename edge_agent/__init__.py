"""Edge sensor agent for retail stores.

BLE beacons and sensors in, situational context out over MQTT, through a durable SQLite outbox.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
