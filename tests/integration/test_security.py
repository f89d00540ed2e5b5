"""MQTT security against a real mosquitto: TLS, mutual TLS with the shipped ACL, passwords from
systemd credentials; certificates are made at test time. Secrets never reach logs or get-config.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties

from edge_agent.tools.mosquitto import LocalMosquitto, free_port
from tests.support.agent import ROOT_TOPIC, StderrTail, run_agent, start_agent
from tests.support.cli import run_cli
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Watcher
from tests.support.paths import CONFIG_DIR
from tests.support.pki import Issued, TestCA

GATEWAY = "gw-demo-01"


@dataclass(frozen=True)
class Pki:
    ca: TestCA
    broker: Issued
    gateway: Issued
    platform: Issued
    rogue_ca: TestCA
    rogue_gateway: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca = TestCA(base / "ca")
    rogue = TestCA(base / "rogue", "rogue CA")
    return Pki(
        ca=ca,
        broker=ca.issue("localhost", server=True),
        gateway=ca.issue(GATEWAY),
        platform=ca.issue("platform-ingest"),
        rogue_ca=rogue,
        rogue_gateway=rogue.issue(GATEWAY),
    )


def client_tls(ca: Path, cert: Issued | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


@pytest.fixture(scope="module")
def mtls_broker(pki: Pki) -> Iterator[LocalMosquitto]:
    """The shipped config/mosquitto.conf and ACL, with test paths and a free port."""
    port = free_port()
    acl = CONFIG_DIR / "mosquitto.acl"
    conf = (CONFIG_DIR / "mosquitto.conf").read_text(encoding="utf-8")
    for old, new in {
        "/etc/mosquitto/edge-agent.acl": str(acl),
        "listener 8883": f"listener {port} 127.0.0.1",
        "/etc/mosquitto/ca/edge-ca.pem": str(pki.ca.cert),
        "/etc/mosquitto/certs/broker.pem": str(pki.broker.cert),
        "/etc/mosquitto/certs/broker.key": str(pki.broker.key),
    }.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    with LocalMosquitto(port=port, listeners=conf, scheme="mqtts") as broker:
        yield broker


def _tls_edits(tmp_path: Path, tls: str) -> dict[str, str]:
    return {"[outbox]": f"[mqtt.tls]\n{tls}\n\n[outbox]"}


def _wait_for_line(tail: StderrTail, needle: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(tail.lines):
            if needle in line:
                return line
        time.sleep(0.2)
    raise AssertionError(f"no log line with {needle!r}; last lines:\n" + tail.text())


def test_mutual_tls_delivers_through_the_shipped_acl(
    tmp_path: Path, pki: Pki, mtls_broker: LocalMosquitto
) -> None:
    platform = Watcher(
        "127.0.0.1",
        mtls_broker.port,
        f"{ROOT_TOPIC}/#",
        tls=client_tls(pki.ca.cert, pki.platform),
    )
    try:
        tls = (
            f'ca_file = "{pki.ca.cert}"\ncert_file = "{pki.gateway.cert}"\n'
            f'key_file = "{pki.gateway.key}"'
        )
        cfg = sim_config(
            tmp_path, mtls_broker, speed=0, duration=60.0, edits=_tls_edits(tmp_path, tls)
        )
        run_agent(cfg)
        got = platform.settle()
    finally:
        platform.close()
    topics = {m.topic.removeprefix(ROOT_TOPIC + "/").split("/")[0] for m in got}
    assert {"status", "presence", "zone", "sensor"} <= topics, topics


def _publish_v5(ctx: ssl.SSLContext, port: int, topic: str) -> int:
    """Publish QoS 1 with MQTT 5 as the gateway; the PUBACK's reason code."""
    acked = threading.Event()
    codes: list[int] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"acl-{time.time_ns()}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.tls_set_context(ctx)
    client.on_publish = lambda _c, _u, _mid, rc, _p: (codes.append(rc.value), acked.set())
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    try:
        client.publish(topic, b"{}", qos=1, properties=Properties(3)).wait_for_publish(10)
        assert acked.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_acl_confines_a_gateway_to_its_own_root(pki: Pki, mtls_broker: LocalMosquitto) -> None:
    platform = Watcher(
        "127.0.0.1",
        mtls_broker.port,
        "retail/#",
        tls=client_tls(pki.ca.cert, pki.platform),
        contract=False,  # the probes are not the agent's messages
    )
    try:
        gw = client_tls(pki.ca.cert, pki.gateway)
        inside = _publish_v5(gw, mtls_broker.port, f"{ROOT_TOPIC}/presence/acl-probe")
        other_gw = _publish_v5(gw, mtls_broker.port, "retail/store-0042/gw-other/presence/x")
        other_root = _publish_v5(gw, mtls_broker.port, "elsewhere/x")
        got = platform.settle(quiet_s=0.5)
    finally:
        platform.close()
    assert inside == 0
    assert other_gw == other_root == 135  # MQTT 5 "Not authorized"
    assert [m.topic for m in got if "acl-probe" in m.topic or "gw-other" in m.topic] == [
        f"{ROOT_TOPIC}/presence/acl-probe"
    ]


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("no client certificate", "requires a client certificate"),
        ("wrong CA", "certificate was not accepted"),
        ("certificate from another CA", "refused our client certificate"),
    ],
)
def test_tls_failures_say_what_to_fix(
    tmp_path: Path, pki: Pki, mtls_broker: LocalMosquitto, case: str, needle: str
) -> None:
    tls = {
        "no client certificate": f'ca_file = "{pki.ca.cert}"',
        "wrong CA": (
            f'ca_file = "{pki.rogue_ca.cert}"\ncert_file = "{pki.gateway.cert}"\n'
            f'key_file = "{pki.gateway.key}"'
        ),
        "certificate from another CA": (
            f'ca_file = "{pki.ca.cert}"\ncert_file = "{pki.rogue_gateway.cert}"\n'
            f'key_file = "{pki.rogue_gateway.key}"'
        ),
    }[case]
    cfg = sim_config(tmp_path, mtls_broker, speed=1, duration=None, edits=_tls_edits(tmp_path, tls))
    proc = start_agent(cfg)
    tail = StderrTail(proc)
    try:
        line = _wait_for_line(tail, needle)
    finally:
        proc.kill()
        proc.wait(10)
    print(f"\n{case}: {line}")
    assert "mqtt.tls." in line  # names the key to fix


@pytest.fixture
def password_broker(tmp_path: Path, pki: Pki) -> Iterator[tuple[LocalMosquitto, str]]:
    """TLS (server certificate only) with user names and passwords, no ACL."""
    secret = "s3cret-Pa55-" + str(time.time_ns())
    pwfile = tmp_path / "mosquitto.passwd"
    for user, pw in ((GATEWAY, secret), ("observer", "observer-pw")):
        flags = ["-c"] if not pwfile.exists() else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(pwfile), user, pw], check=True)
    port = free_port()
    listeners = (
        f"listener {port} 127.0.0.1\n"
        f"cafile {pki.ca.cert}\ncertfile {pki.broker.cert}\nkeyfile {pki.broker.key}\n"
        "tls_version tlsv1.2\n"
        f"allow_anonymous false\npassword_file {pwfile}\n"
    )
    with LocalMosquitto(port=port, listeners=listeners, scheme="mqtts") as broker:
        yield broker, secret


def test_password_from_systemd_credential_never_shows(
    tmp_path: Path, pki: Pki, password_broker: tuple[LocalMosquitto, str]
) -> None:
    broker, secret = password_broker
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "mqtt-password").write_text(secret + "\n", encoding="utf-8")
    os.environ["CREDENTIALS_DIRECTORY"] = str(creds)  # inherited by the agent (as systemd does)
    observer = Watcher(
        "127.0.0.1",
        broker.port,
        f"{ROOT_TOPIC}/#",
        tls=client_tls(pki.ca.cert),
        username="observer",
        password="observer-pw",
    )
    try:
        edits = {
            '# username = "gw-demo-01"': f'username = "{GATEWAY}"',
            '# password_credential = "mqtt-password"': 'password_credential = "mqtt-password"',
            **_tls_edits(tmp_path, f'ca_file = "{pki.ca.cert}"\nserver_name = "localhost"'),
        }
        cfg = sim_config(tmp_path, broker, speed=0, duration=30.0, edits=edits)
        proc = run_agent(cfg, "--log-level", "DEBUG")
        got = observer.settle()
        shown = run_cli("get-config", "--config", str(cfg))
    finally:
        observer.close()
        os.environ.pop("CREDENTIALS_DIRECTORY", None)
    assert any(m.topic.endswith("/status") for m in got) and len(got) > 20
    assert "password_credential" in shown.stdout
    for text in (proc.stdout, proc.stderr, shown.stdout, shown.stderr):
        assert secret not in text


def test_wrong_password_is_refused_with_a_clear_message(
    tmp_path: Path, pki: Pki, password_broker: tuple[LocalMosquitto, str]
) -> None:
    broker, _ = password_broker
    os.environ["EDGE_TEST_WRONG_PW"] = "not-the-password"
    try:
        edits = {
            '# username = "gw-demo-01"': f'username = "{GATEWAY}"',
            '# password_env = "EDGE_AGENT_MQTT_PASSWORD"': 'password_env = "EDGE_TEST_WRONG_PW"',
            **_tls_edits(tmp_path, f'ca_file = "{pki.ca.cert}"'),
        }
        cfg = sim_config(tmp_path, broker, speed=1, duration=None, edits=edits)
        proc = start_agent(cfg)
    finally:
        os.environ.pop("EDGE_TEST_WRONG_PW")
    tail = StderrTail(proc)
    try:
        line = _wait_for_line(tail, "connection refused")
    finally:
        proc.kill()
        proc.wait(10)
    assert "mqtt.username" in line and "not-the-password" not in tail.text()
