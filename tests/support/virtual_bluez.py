"""The virtual BlueZ as tests use it: a ``firmware-sim bluez`` process on a private bus, that
can be killed, started again, and asked to unplug, plug or jam an adapter."""

from __future__ import annotations

import asyncio
import select
import signal
import subprocess
import sys
import time

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from edge_agent.tools.mosquitto import terminate
from firmware_sim.bluez import CONTROL_INTERFACE, CONTROL_PATH
from firmware_sim.dbus import PrivateBus
from tests.support.paths import CONFIG_DIR

READY_TIMEOUT_S = 30.0


class BluezProcess:
    """``python -m firmware_sim.cli bluez --bus …`` serving the demo store."""

    def __init__(self, bus: PrivateBus, adapters: str = "hci0,hci1", *extra: str) -> None:
        self.bus = bus
        self.argv = [
            sys.executable,
            "-m",
            "firmware_sim.cli",
            "bluez",
            "--scenario",
            str(CONFIG_DIR / "store-demo.toml"),
            "--bus",
            bus.address,
            "--adapters",
            adapters,
            *extra,
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.log = bus.directory / "virtual-bluez.log"

    def start(self) -> BluezProcess:
        """Start and wait until it owns ``org.bluez``."""
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("ready:"):
                    return self
                if not line:
                    break
        raise RuntimeError(
            f"virtual BlueZ did not become ready (exit {self.proc.poll()}):\n{self.log_text()}"
        )

    def log_text(self) -> str:
        """What the virtual BlueZ wrote to stderr (all its runs)."""
        return self.log.read_text() if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the ``org.bluez`` name vanishes with the connection, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None:
            terminate(self.proc, 10)


def control(bus: PrivateBus, method: str, adapter: str) -> None:
    """Call ``org.firmwaresim.Control1.<method>(adapter)`` on the virtual BlueZ."""

    async def call() -> None:
        client = await MessageBus(bus_address=bus.address).connect()
        try:
            reply = await asyncio.wait_for(
                client.call(
                    Message(
                        destination="org.bluez",
                        path=CONTROL_PATH,
                        interface=CONTROL_INTERFACE,
                        member=method,
                        signature="s",
                        body=[adapter],
                    )
                ),
                10,
            )
            assert reply is not None and reply.message_type != MessageType.ERROR, reply
        finally:
            client.disconnect()

    asyncio.run(call())


def bleak_edits(
    *,
    watchdog_s: float = 30.0,
    policy: str = "all",
    mode: str = "active",
    start_timeout_s: float = 10.0,
) -> dict[str, str]:
    """Edits of the shipped config that scan ``hci0`` and ``hci1`` (the entrance and produce
    receivers of the demo store) through bleak."""
    return {
        'kind = "bleak"': 'kind = "bleak"',
        'adapters = ["hci0"]': 'adapters = ["hci0", "hci1"]',
        'scanning_mode = "active"': f'scanning_mode = "{mode}"',
        'adapter_policy = "all"': f'adapter_policy = "{policy}"',
        "watchdog_s = 30.0": f"watchdog_s = {watchdog_s}",
        "start_timeout_s = 10.0": f"start_timeout_s = {start_timeout_s}",
        # the shipped hci0 (entrance) stays; the demo store's entrance receiver is heard on it
        '[[receivers]]\nid = "rx-entrance"\nzone = "entrance"\nx = 6.0\ny = 6.0\nz = 2.6\n': "",
        'id = "rx-produce"': 'id = "hci1"',
    }
