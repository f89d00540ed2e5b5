"""Configuration: the example is valid; every bad config names key, value, reason and line."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.config.checks import load_checked
from edge_agent.errors import ConfigError
from edge_agent.runtime.secrets import mqtt_password
from tests.support.cli import run_cli
from tests.support.configs import MINIMAL
from tests.support.paths import CONFIG_DIR


def test_example_config_is_valid() -> None:
    cfg = load_config(CONFIG_DIR / "agent.toml")
    assert cfg.topic_root == "retail/store-0042/gw-demo-01"
    assert cfg.source.scenario == CONFIG_DIR / "store-demo.toml"
    assert {r.zone for r in cfg.receivers} == {z.id for z in cfg.zones}


def test_example_config_has_no_inline_secret() -> None:
    text = (CONFIG_DIR / "agent.toml").read_text()
    assert "\npassword =" not in text and "\npassword=" not in text


def _errors(write: Callable[[str], Path], text: str) -> list[str]:
    path = write(text)
    with pytest.raises(ConfigError) as info:
        load_checked(path, secrets=True)
    return [issue.render("agent.toml") for issue in info.value.issues]


BAD_CASES = [
    (  # 1: a segment that cannot be a topic segment
        MINIMAL.replace('id = "gw-test"', 'id = "GW/1"'),
        [
            "agent.toml:3: gateway.id = 'GW/1': must be 1–64 lowercase letters, digits, "
            "'-' or '_', "
            "starting with a letter or digit (it becomes an MQTT topic segment)"
        ],
    ),
    (  # 2: number out of range
        MINIMAL + "\n[mqtt]\nkeepalive_s = 2\n",
        ["agent.toml:24: mqtt.keepalive_s = 2: must be at least 5"],
    ),
    (  # 3: misspelt key, with a suggestion
        MINIMAL + '\n[mqtt]\npasword_file = "/run/secret"\n',
        [
            "agent.toml:24: mqtt.pasword_file = '/run/secret': unknown key (did you mean "
            "'password_file'?)"
        ],
    ),
    (  # 4: wrong type
        MINIMAL + '\n[pipeline]\ntick_s = "fast"\n',
        ["agent.toml:24: pipeline.tick_s = 'fast': must be a number"],
    ),
    (  # 5: not one of the choices
        MINIMAL + '\n[source]\nkind = "usb"\n',
        ["agent.toml:24: source.kind = 'usb': must be one of 'bleak', 'sim' or 'replay'"],
    ),
    (  # 6: a missing required key
        MINIMAL.replace('site = "site-1"\n', ""),
        ["agent.toml:2: gateway.site: required key is missing"],
    ),
    (  # 7: a value inside an array of tables
        MINIMAL.replace(
            'radius_m = 5.0\n\n[[zones]]\nid = "b"\nradius_m = 5.0',
            'radius_m = 5.0\n\n[[zones]]\nid = "b"\nradius_m = -1.0',
        ),
        ["agent.toml:13: zones[1].radius_m = -1.0: must be greater than 0"],
    ),
    (  # 8: a reference to a zone that does not exist
        MINIMAL.replace('zone = "b"', 'zone = "c"'),
        ["agent.toml:21: receivers[1].zone = 'c': no such zone (zones: a, b)"],
    ),
    (  # 9: broker URL of the wrong scheme
        MINIMAL + '\n[mqtt]\nurls = ["http://broker:1883"]\n',
        [
            "agent.toml:24: mqtt.urls = ['http://broker:1883']: 'http://broker:1883' is not of the "
            "form mqtt://host:port or mqtts://host:port"
        ],
    ),
    (  # 10: password variable not set
        MINIMAL + '\n[mqtt]\nusername = "gw"\npassword_env = "EDGE_TEST_UNSET_VARIABLE"\n',
        [
            "agent.toml:25: mqtt.password_env = 'EDGE_TEST_UNSET_VARIABLE': "
            "environment variable is "
            "not set"
        ],
    ),
    (  # 11: bands in the wrong order
        MINIMAL + "\n[proximity]\nnear_m = 10.0\nfar_m = 8.0\n",
        ["agent.toml:24: proximity.near_m = 10.0: bands must grow: immediate_m < near_m < far_m"],
    ),
    (  # 12: duplicate ids
        MINIMAL.replace('id = "b"', 'id = "a"').replace('zone = "b"', 'zone = "a"'),
        ["agent.toml:12: zones[1].id = 'a': duplicate id in zones"],
    ),
    (  # 13: a device with neither address nor beacon
        MINIMAL + '\n[[devices]]\nid = "tag-1"\nkind = "asset"\n',
        ["agent.toml:23: devices[0] = 'tag-1': needs exactly one of 'address' or 'beacon'"],
    ),
    (  # 14: sim source without its scenario
        MINIMAL + '\n[source]\nkind = "sim"\n',
        ["agent.toml:23: source.scenario: required when source.kind = 'sim'"],
    ),
    (  # 15: an outbox durability level we do not offer
        MINIMAL + '\n[outbox]\nsynchronous = "OFF"\n',
        ["agent.toml:24: outbox.synchronous = 'OFF': must be one of 'NORMAL' or 'FULL'"],
    ),
    (  # 16: an outbox time-to-live too short to ride out a broker restart
        MINIMAL + "\n[outbox]\nttl_s = 5\n",
        ["agent.toml:24: outbox.ttl_s = 5: must be at least 60"],
    ),
    (  # 17: TOML syntax
        MINIMAL + "\n[mqtt\n",
        [
            "agent.toml:23: not valid TOML: Expected ']' at the end of a table declaration "
            "(at line 23, column 6)"
        ],
    ),
    (  # 18: a password in a broker URL: rejected, and never echoed
        MINIMAL + '\n[mqtt]\nurls = ["mqtts://gw:hunter2@broker:8883"]\n',
        [
            "agent.toml:24: mqtt.urls = ['mqtts://***@broker:8883']: must not carry credentials; "
            "use mqtt.username with password_file, password_credential or password_env"
        ],
    ),
    (  # 19: a credential outside systemd
        MINIMAL + '\n[mqtt]\nusername = "gw"\npassword_credential = "mqtt-password"\n',
        [
            "agent.toml:25: mqtt.password_credential = 'mqtt-password': $CREDENTIALS_DIRECTORY "
            "is not set: run under systemd with LoadCredential=mqtt-password:<file> (from a "
            "shell: systemd-run --pipe --wait -p LoadCredential=mqtt-password:<file> "
            "edge-agent …), or use password_file"
        ],
    ),
    (  # 20: mutual TLS half configured
        MINIMAL + '\n[mqtt]\nurls = ["mqtts://b:8883"]\n[mqtt.tls]\ncert_file = "agent.toml"\n',
        [
            "agent.toml:25: mqtt.tls.key_file: mutual TLS needs both cert_file and key_file "
            "(or key_credential)"
        ],
    ),
    (  # 21: privacy: an unknown time zone, a bad time of day, an unknown policy
        MINIMAL
        + '\n[privacy]\ntimezone = "Mars/Olympus"\nrotate_at = "24:00"\n'
        + 'policy = { resolvable = "track_everyone" }\n',
        [
            "agent.toml:26: privacy.policy.resolvable = 'track_everyone': must be one of "
            "'track', 'pseudonymous', 'count_only' or 'ignore'",
            "agent.toml:25: privacy.rotate_at = '24:00': must be a time of day 'HH:MM' or "
            "'HH:MM:SS' (00:00 to 23:59:59)",
            "agent.toml:24: privacy.timezone = 'Mars/Olympus': is not a known IANA time zone "
            "(e.g. 'Europe/Berlin')",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), BAD_CASES, ids=[str(i + 1) for i in range(len(BAD_CASES))]
)
def test_bad_config_exact_message(
    write_config: Callable[[str], Path], text: str, expected: list[str]
) -> None:
    assert _errors(write_config, text) == expected


def test_all_errors_are_reported_at_once(write_config: Callable[[str], Path]) -> None:
    text = (
        MINIMAL.replace('id = "gw-test"', 'id = "GW"') + "\n[mqtt]\nkeepalive_s = 1\ninflight = 0\n"
    )
    errors = _errors(write_config, text)
    assert [e.split(": ")[1].split(" =")[0] for e in errors] == [
        "gateway.id",
        "mqtt.keepalive_s",
        "mqtt.inflight",
    ]


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/agent.toml")
    assert str(info.value) == "/nonexistent/agent.toml: cannot read file: No such file or directory"


def test_password_from_file_and_env(
    write_config: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = load_config(
        write_config(MINIMAL + f'\n[mqtt]\nusername = "gw"\npassword_file = "{secret}"\n')
    )
    assert mqtt_password(cfg.mqtt) == "s3cret"
    monkeypatch.setenv("EDGE_TEST_PW", "from-env")
    cfg = load_config(
        write_config(MINIMAL + '\n[mqtt]\nusername = "gw"\npassword_env = "EDGE_TEST_PW"\n')
    )
    assert mqtt_password(cfg.mqtt) == "from-env"
    assert "from-env" not in repr(cfg) and "s3cret" not in repr(cfg)


def test_relative_paths_resolve_against_the_config_file(
    write_config: Callable[[str], Path],
) -> None:
    path = write_config(MINIMAL.replace('state_dir = "{state}"', 'state_dir = "state"'))
    assert load_config(path).gateway.state_dir == path.parent / "state"


def test_check_config_cli(write_config: Callable[[str], Path]) -> None:
    assert "OK" in run_cli("check-config", str(CONFIG_DIR / "agent.toml")).stdout
    bad = write_config(
        MINIMAL.replace('id = "gw-test"', 'id = "GW"') + "\n[mqtt]\nkeepalive_s = 1\n"
    )
    err = run_cli("check-config", str(bad), expect=2).stderr
    assert err.startswith(f"2 error(s) in {bad}:\n")
    assert f"  {bad}:24: mqtt.keepalive_s = 1: must be at least 5" in err


def test_run_with_bad_config_exits_2_before_touching_anything(
    write_config: Callable[[str], Path],
) -> None:
    bad = write_config(MINIMAL + '\n[source]\nkind = "bleak"\nadapters = ["wlan0"]\n')
    err = run_cli("run", "--config", str(bad), expect=2).stderr
    assert "source.adapters[0] = 'wlan0': must be a BlueZ adapter name like 'hci0'" in err
    assert not (bad.parent / "state").exists()
    assert "EDGE_TEST_UNSET_VARIABLE" not in os.environ


def test_bad_radio_settings_are_named(write_config: Callable[[str], Path]) -> None:
    bad = write_config(
        MINIMAL + '\n[source]\nkind = "bleak"\nadapter_policy = "round-robin"\nwatchdog_s = 0.5\n'
    )
    err = run_cli("check-config", str(bad), expect=2).stderr
    assert "source.adapter_policy = 'round-robin': must be one of 'all' or 'failover'" in err
    assert "source.watchdog_s = 0.5: must be at least 1" in err


def test_a_credential_outside_systemd_stops_only_what_connects_to_the_broker(
    write_config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's recommended production config (the password as a systemd credential),
    used from a shell: consent, erasure and the field tools work; check-config says what it
    could not check and how to; only ``run`` needs the secret, and says how to give it."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    scenario = CONFIG_DIR / "store-demo.toml"
    cfg = write_config(
        MINIMAL
        + f'\n[source]\nkind = "sim"\nscenario = "{scenario}"\nspeed = 0.0\n'
        + '\n[mqtt]\nusername = "gw"\npassword_credential = "mqtt-password"\n'
    )
    out = run_cli("check-config", str(cfg)).stdout
    assert "OK" in out and "note: mqtt.password_credential = 'mqtt-password': not checked" in out
    assert "systemd-run --pipe --wait -p LoadCredential=mqtt-password:" in out
    run_cli("get-config", "--config", str(cfg))
    run_cli("consent", "--config", str(cfg), "add", "4A:11:22:33:44:55", "--id", "app-1")
    assert "app-1" in run_cli("consent", "--config", str(cfg), "list").stdout
    run_cli("erase", "app-1", "--config", str(cfg))
    run_cli("record", str(cfg.parent / "rec.jsonl"), "--config", str(cfg), "--count", "20")
    run_cli("replay", str(cfg.parent / "rec.jsonl"), "--config", str(cfg))
    err = run_cli("run", "--config", str(cfg), expect=2).stderr
    assert "mqtt.password_credential" in err and "systemd-run --pipe --wait" in err


def test_a_gateway_whose_adapters_have_no_zone_is_warned_about_loudly(
    write_config: Callable[[str], Path],
) -> None:
    """The shipped example scans hci0: with no receiver named hci0 nothing heard gets a zone,
    which would look like an empty store. check-config and run say so; the shipped example
    names hci0 and is quiet."""
    quiet = run_cli("check-config", str(CONFIG_DIR / "agent.toml"))
    assert "warning" not in quiet.stderr
    silent = write_config(MINIMAL + '\n[source]\nkind = "bleak"\nadapters = ["hci0", "hci1"]\n')
    err = run_cli("check-config", str(silent)).stderr
    assert "warning:" in err and "no [[receivers]] entry is named 'hci0' or 'hci1'" in err
    assert 'add [[receivers]] id = "hci0"' in err
    half = write_config(
        MINIMAL.replace('id = "rx-a"', 'id = "hci0"')
        + '\n[source]\nkind = "bleak"\nadapters = ["hci0", "hci1"]\n'
    )
    assert "hci1 has no [[receivers]] entry" in run_cli("check-config", str(half)).stderr
    sensors_only = write_config(
        '[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state}"\n[source]\nkind = "bleak"\n'
    )
    assert "warning" not in run_cli("check-config", str(sensors_only)).stderr


def test_device_zones_and_radii_are_checked(write_config: Callable[[str], Path]) -> None:
    fixed = MINIMAL + '\n[[devices]]\nid = "fridge-1"\nkind = "sensor"\n'
    fixed += 'address = "A4:C1:38:00:00:01"\nzone = "cellar"\n'
    assert _errors(write_config, fixed) == [
        "agent.toml:27: devices[0].zone = 'cellar': no such zone (zones: a, b)"
    ]
    moving = fixed.replace('zone = "cellar"', 'zone = "a"\npresence = true')
    assert _errors(write_config, moving) == [
        "agent.toml:28: devices[0].presence = True: a device fixed in a zone has none"
    ]
    wide = MINIMAL.replace("radius_m = 5.0", "radius_m = 9.0", 1)
    assert _errors(write_config, wide) == [
        "agent.toml:9: zones[0].radius_m = 9.0: is beyond proximity.far_m = 8: a device "
        "inside the zone would be 'gone'; lower the radius or raise far_m"
    ]


def test_broker_addresses_default_their_port_by_scheme() -> None:
    from edge_agent.config.sections import broker_address

    assert broker_address("mqtt://broker") == ("broker", 1883, False)
    assert broker_address("mqtts://broker") == ("broker", 8883, True)
    assert broker_address("mqtts://10.1.2.3:9883") == ("10.1.2.3", 9883, True)
