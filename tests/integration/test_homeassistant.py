"""Home Assistant discovery through the real agent and broker: device-based discovery of the
gateway (zone occupancy), its sensors and beacons — never a shopper or a pseudonym — with
origin and availability, sent again on Home Assistant's birth message; every key is one Home
Assistant documents, and every entity's template finds its value in the agent's messages."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish

from edge_agent.tools.mosquitto import LocalMosquitto
from tests.support.agent import ROOT_TOPIC, start_agent, wait_for_occupancy, wait_until
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Watcher

# https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload and the
# abbreviations of https://www.home-assistant.io/integrations/mqtt/#discovery-messages
TOP_KEYS = {
    "dev",
    "device",
    "o",
    "origin",
    "cmps",
    "components",
    "state_topic",
    "stat_t",
    "command_topic",
    "encoding",
    "qos",
    "availability",
    "avty",
    "availability_mode",
    "availability_topic",
    "availability_template",
}
DEVICE_KEYS = {
    "ids",
    "identifiers",
    "name",
    "mf",
    "manufacturer",
    "mdl",
    "model",
    "sw",
    "sw_version",
    "hw",
    "hw_version",
    "sn",
    "serial_number",
    "via_device",
    "cns",
    "connections",
    "sa",
    "suggested_area",
    "cu",
    "configuration_url",
    "mdl_id",
}
ORIGIN_KEYS = {"name", "sw", "sw_version", "url", "support_url"}
AVAILABILITY_KEYS = {
    "topic",
    "t",
    "value_template",
    "val_tpl",
    "payload_available",
    "pl_avail",
    "payload_not_available",
    "pl_not_avail",
}
COMMON = {
    "p",
    "platform",
    "name",
    "unique_id",
    "uniq_id",
    "state_topic",
    "stat_t",
    "value_template",
    "val_tpl",
    "device_class",
    "dev_cla",
    "icon",
    "ic",
    "entity_category",
    "ent_cat",
    "expire_after",
    "exp_aft",
    "qos",
    "object_id",
    "default_entity_id",
    "json_attributes_topic",
    "json_attributes_template",
    "enabled_by_default",
    "force_update",
}
PLATFORM_KEYS = {
    "sensor": COMMON
    | {
        "unit_of_measurement",
        "unit_of_meas",
        "state_class",
        "stat_cla",
        "suggested_display_precision",
        "last_reset_value_template",
    },
    "binary_sensor": COMMON | {"payload_on", "pl_on", "payload_off", "pl_off", "off_delay"},
}
SENSOR_CLASSES = {
    "temperature",
    "humidity",
    "pressure",
    "battery",
    "voltage",
    "illuminance",
    "carbon_dioxide",
    "pm25",
    "pm10",
    "moisture",
    "power",
    "energy",
    "current",
}
BINARY_CLASSES = {"door", "window", "opening", "motion"}
UNITS = {
    "temperature": {"°C", "°F", "K"},
    "humidity": {"%"},
    "battery": {"%"},
    "voltage": {"V", "mV"},
    "pressure": {"hPa", "Pa", "kPa", "mbar", "bar", "psi"},
}
ON = {"discovery = false": "discovery = true"}
PATH = re.compile(r"value_json((?:\.[A-Za-z0-9_]+)+)")


def _check_keys(topic: str, payload: dict[str, Any]) -> None:
    assert re.fullmatch(r"homeassistant/device/[A-Za-z0-9_-]+/config", topic), topic
    assert set(payload) <= TOP_KEYS, set(payload) - TOP_KEYS
    assert set(payload["dev"]) <= DEVICE_KEYS and payload["dev"]["ids"]
    assert set(payload["o"]) <= ORIGIN_KEYS and payload["o"]["name"]
    for avail in payload["availability"]:
        assert set(avail) <= AVAILABILITY_KEYS and avail["topic"] == f"{ROOT_TOPIC}/status"
    for key, comp in payload["cmps"].items():
        platform = comp["p"]
        assert platform in PLATFORM_KEYS, platform
        assert set(comp) <= PLATFORM_KEYS[platform], (key, set(comp) - PLATFORM_KEYS[platform])
        assert comp["unique_id"] and comp["state_topic"].startswith(ROOT_TOPIC + "/")
        classes = SENSOR_CLASSES if platform == "sensor" else BINARY_CLASSES
        if "device_class" in comp:
            assert comp["device_class"] in classes, comp
            units = UNITS.get(comp["device_class"])
            assert units is None or comp.get("unit_of_measurement") in units, comp


def _resolve(template: str, state: dict[str, Any]) -> object:
    """The value a ``{{ value_json.a.b }}`` template reads from a state message."""
    m = PATH.search(template)
    assert m, template
    node: Any = state
    for part in m.group(1).strip(".").split("."):
        assert isinstance(node, dict) and part in node, (template, part)
        node = node[part]
    return node


def test_discovery_announces_the_store_but_never_a_shopper(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    cfg = sim_config(
        tmp_path,
        mosquitto,
        speed=20.0,
        duration=None,
        edits=ON,
    )
    ha = Watcher(mosquitto.host, mosquitto.port, "homeassistant/#")
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/#")
    proc = start_agent(cfg)
    try:
        wait_for_occupancy(watcher, 2)
        wait_until(
            lambda: any("fridge" in m.topic for m in list(ha.messages)), 60, "a sensor announced"
        )
        before = len(ha.messages)
        mqtt_publish.single(
            "homeassistant/status", "online", hostname=mosquitto.host, port=mosquitto.port
        )
        wait_until(lambda: len(ha.messages) >= 2 * before, 30, "discovery sent again on birth")
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
        ha.close()
        watcher.close()
    configs = {m.topic: json.loads(m.payload) for m in ha.messages if m.topic.endswith("/config")}
    gateway = configs["homeassistant/device/edge_agent_gw-demo-01/config"]
    zones = {c["state_topic"] for c in gateway["cmps"].values() if "zone/" in c["state_topic"]}
    assert len(zones) >= 4
    states: dict[str, dict[str, Any]] = {}
    for m in watcher.messages:
        if m.payload and "/cmd/" not in m.topic:
            states[m.topic] = json.loads(m.payload)
    checked = 0
    for topic, payload in configs.items():
        _check_keys(topic, payload)
        assert payload["dev"]["name"] != "" and not payload["dev"]["name"].startswith("p-")
        for comp in payload["cmps"].values():
            assert "shopper" not in json.dumps(comp)
            state = states.get(comp["state_topic"])
            if state is not None:  # the template finds its value in what the agent sends
                _resolve(comp["value_template"], state)
                checked += 1
    assert any("fridge" in t for t in configs) and checked >= 5
