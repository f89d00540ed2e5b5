"""A private ``dbus-daemon`` for the virtual BlueZ: no system bus, no root, nothing shared.

Clients reach it by pointing ``DBUS_SYSTEM_BUS_ADDRESS`` at :attr:`PrivateBus.address`, which is
what bleak (through dbus-fast) reads to find "the system bus".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from edge_agent.errors import SourceError
from edge_agent.tools.mosquitto import terminate

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">33554432</limit>
</busconfig>
"""
START_TIMEOUT_S = 10.0


class PrivateBus:
    """Starts ``dbus-daemon`` on a socket in a fresh temporary directory; stops it on exit."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="edge-agent-dbus-"))
        self.socket = self.directory / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateBus:
        """Start the daemon and wait until it accepts connections."""
        exe = shutil.which("dbus-daemon")
        if exe is None:
            raise SourceError("dbus", "dbus-daemon is not installed (apt install dbus)")
        config = self.directory / "bus.conf"
        config.write_text(_CONFIG.format(socket=self.socket), encoding="utf-8")
        self._proc = subprocess.Popen(
            [exe, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        # The daemon prints its address once it listens; a dead daemon closes stdout.
        line = self._proc.stdout.readline().decode().strip()
        if not line:
            self.stop()
            raise SourceError("dbus", "dbus-daemon exited before it printed its address")
        return self

    @property
    def pid(self) -> int | None:
        """Process id of the daemon while it runs."""
        return self._proc.pid if self._proc is not None else None

    def environ(self) -> dict[str, str]:
        """``os.environ`` with the system bus pointed here."""
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def stop(self) -> None:
        """Stop the daemon and remove the temporary directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivateBus:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
