"""Home Assistant MQTT discovery (``[homeassistant] discovery = true``), device-based.

One discovery message per device on ``{prefix}/device/{object_id}/config`` (Home Assistant
2024.11 and later): the gateway itself with a sensor per zone's occupancy, each registered
sensor with an entity per measurement it reports, each registered beacon (carts, badges,
assets) with its battery. Shoppers are never announced, nor any device known only by a
pseudonym. Entities read the agent's own topics (no second copy of any state) and follow the
gateway's ``status``. The messages are not retained: they are sent on every connection and
again whenever Home Assistant announces itself on its birth topic.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from edge_agent import __version__, topics
from edge_agent.config import AgentConfig
from edge_agent.models import BeaconHealthBody, ContextEvent, ReadingBody
from edge_agent.runtime.publisher import Inbound, Publisher

_LOGGER = logging.getLogger(__name__)
ORIGIN = {"name": "edge-agent", "sw": __version__}
SENSOR_CLASSES = {
    "temperature": "temperature",
    "humidity": "humidity",
    "pressure": "pressure",
    "battery": "battery",
    "voltage": "voltage",
    "illuminance": "illuminance",
    "co2": "carbon_dioxide",
    "pm25": "pm25",
    "pm10": "pm10",
    "moisture": "moisture",
    "power": "power",
    "energy": "energy",
    "current": "current",
}
"""Measurement name → Home Assistant sensor device class."""
BINARY_CLASSES = {"door": "door", "window": "window", "opening": "opening", "motion": "motion"}
"""Boolean measurement name → Home Assistant binary sensor device class."""
NEVER = frozenset({"shopper", "unknown"})


class Discovery:
    """Announces the gateway, its zones, its sensors and its beacons to Home Assistant."""

    def __init__(self, cfg: AgentConfig, publisher: Publisher) -> None:
        self.cfg = cfg
        self.publisher = publisher
        self.root = cfg.topic_root
        self.prefix = cfg.homeassistant.prefix
        self._configs: dict[str, bytes] = {}
        """object id → its discovery payload (one per device)."""
        self._components: dict[str, dict[str, Any]] = {}
        self._registered = {d.id for d in cfg.devices if d.kind.value not in NEVER}
        self._gateway()
        publisher.subscribe(cfg.homeassistant.birth_topic, self.on_birth)
        publisher.on_connect(self.publish_all)

    @property
    def announced(self) -> dict[str, bytes]:
        """Discovery topic → payload, of every device announced."""
        return {self._topic(k): v for k, v in self._configs.items()}

    def on_birth(self, message: Inbound) -> None:
        """Home Assistant came online: announce everything again."""
        if message.payload.strip() == b"online":
            self.publish_all()

    def publish_all(self) -> None:
        """Every discovery message, now (at each connection and Home Assistant birth)."""
        for key in self._configs:
            self._send(key)

    def observe(self, events: list[ContextEvent]) -> None:
        """A tick's events: a sensor or beacon seen for the first time, or with a measurement
        not seen before, is announced (the pipeline's events are read, never changed)."""
        for ev in events:
            body = ev.body
            if isinstance(body, ReadingBody):
                self._sensor(body)
            elif isinstance(body, BeaconHealthBody) and body.battery_mv is not None:
                self._beacon(body.device, body.device_class)

    # ---------------------------------------------------------------- devices

    def _gateway(self) -> None:
        gw = self.cfg.gateway.id
        comps = {
            f"{gw}_zone_{z.id}": {
                "p": "sensor",
                "name": f"{z.id} occupancy",
                "unique_id": f"edge_agent_{gw}_zone_{z.id}_occupancy",
                "state_topic": topics.full(self.root, topics.occupancy(z.id)),
                "value_template": "{{ value_json.total }}",
                "unit_of_measurement": "devices",
                "state_class": "measurement",
                "icon": "mdi:account-group",
            }
            for z in self.cfg.zones
        }
        comps[f"{gw}_adverts"] = {
            "p": "sensor",
            "name": "Adverts per second",
            "unique_id": f"edge_agent_{gw}_adverts_per_s",
            "state_topic": topics.full(self.root, topics.HEALTH),
            "value_template": "{{ value_json.adverts_per_s }}",
            "unit_of_measurement": "1/s",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        }
        device = {
            "ids": [f"edge_agent_{gw}"],
            "name": f"Store gateway {gw}",
            "mf": "edge-agent",
            "mdl": "BLE store gateway",
            "sw": __version__,
        }
        self._set(gw, device, comps)

    def _sensor(self, body: ReadingBody) -> None:
        if body.device not in self._registered or body.device_class in NEVER:
            return
        comps = self._components.get(body.device, {})
        new = {
            f"{body.device}_{name}": self._measurement(body.device, name, m.value, m.unit)
            for name, m in body.measurements.items()
            if f"{body.device}_{name}" not in comps
        }
        if new:
            self._set(body.device, self._child(body.device, body.format), {**comps, **new})

    def _measurement(
        self, device: str, name: str, value: object, unit: str | None
    ) -> dict[str, Any]:
        path = f"value_json.measurements.{name}.value"
        base = {
            "name": name.replace("_", " "),
            "unique_id": f"edge_agent_{device}_{name}",
            "state_topic": topics.full(self.root, topics.sensor(device)),
        }
        if isinstance(value, bool):
            out = {
                "p": "binary_sensor",
                **base,
                "value_template": f"{{{{ 'ON' if {path} else 'OFF' }}}}",
            }
            if name in BINARY_CLASSES:
                out["device_class"] = BINARY_CLASSES[name]
            return out
        out = {"p": "sensor", **base, "value_template": f"{{{{ {path} }}}}"}
        if isinstance(value, int | float):
            out["state_class"] = "measurement"
        if name in SENSOR_CLASSES:
            out["device_class"] = SENSOR_CLASSES[name]
        if unit:
            out["unit_of_measurement"] = unit
        return out

    def _beacon(self, device: str, kind: str) -> None:
        # beacon health is only ever published for registered beacons (devices, fleets)
        if kind in NEVER or device in self._components:
            return
        comps = {
            f"{device}_battery": {
                "p": "sensor",
                "name": "battery voltage",
                "unique_id": f"edge_agent_{device}_battery_mv",
                "state_topic": topics.full(self.root, topics.beacon_health(device)),
                "value_template": "{{ value_json.battery_mv }}",
                "device_class": "voltage",
                "unit_of_measurement": "mV",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            }
        }
        self._set(device, self._child(device, kind), comps)

    def _child(self, device: str, model: str) -> dict[str, Any]:
        return {
            "ids": [f"edge_agent_{device}"],
            "name": device,
            "mdl": model,
            "via_device": f"edge_agent_{self.cfg.gateway.id}",
        }

    def _set(self, key: str, device: dict[str, Any], comps: dict[str, dict[str, Any]]) -> None:
        self._components[key] = comps
        payload = {
            "dev": device,
            "o": ORIGIN,
            "cmps": comps,
            "availability": [
                {
                    "topic": topics.full(self.root, topics.STATUS),
                    "value_template": "{{ value_json.state }}",
                    "payload_available": "online",
                    "payload_not_available": "offline",
                }
            ],
            "qos": 1,
        }
        self._configs[key] = json.dumps(payload, separators=(",", ":")).encode()
        self._send(key)

    def _topic(self, key: str) -> str:
        return f"{self.prefix}/device/edge_agent_{key}/config"

    def _send(self, key: str) -> None:
        if not self.publisher.publish_direct(self._topic(key), self._configs[key], 1, False):
            _LOGGER.debug("discovery of %s waits for the broker", key)
