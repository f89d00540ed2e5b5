"""A private mosquitto on a free loopback port, for ``demo`` and the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from edge_agent.errors import EdgeAgentError

INSTALL_HINT = "apt-get install -y mosquitto"


class PortTaken(EdgeAgentError):
    """Another process listens on the port mosquitto was to use."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str:
    """Path of the mosquitto binary, or an error saying how to install it."""
    path = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if path is None:
        raise EdgeAgentError(f"mosquitto is not installed; run: {INSTALL_HINT}")
    return path


def terminate(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """SIGTERM a child process and reap it; SIGKILL it if it has not gone within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LocalMosquitto:
    """``with LocalMosquitto() as broker:`` — started on enter, killed on exit."""

    def __init__(
        self,
        port: int | None = None,
        extra_conf: str = "",
        host: str = "127.0.0.1",
        *,
        persistence: bool = False,
        per_listener_settings: bool = False,
        listeners: str | None = None,
        scheme: str = "mqtt",
    ) -> None:
        """``extra_conf`` is appended (more listeners, say); with ``per_listener_settings`` each
        listener there carries its own ``allow_anonymous``, ``password_file`` and ``acl_file``,
        and the default loopback listener stays open to anonymous clients (test observers).
        ``listeners`` replaces the default listener block altogether (TLS brokers, say); it
        must listen on ``port``, and ``url`` then uses ``scheme``."""
        self.host = host
        self._fixed_port = port is not None
        self.port = port or free_port(host)
        self.extra_conf = extra_conf
        self.persistence = persistence
        self.per_listener_settings = per_listener_settings
        self.listeners = listeners
        self.scheme = scheme
        self._dir = Path(tempfile.mkdtemp(prefix="edge-agent-mosquitto-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtt://host:port``."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """mosquitto's log file."""
        return self._dir / "mosquitto.log"

    def start(self, timeout: float = 10.0, tries: int = 3) -> None:
        """Start and wait until the port accepts connections. A port of our own choosing that
        another process took in the meantime is chosen again (``tries`` times)."""
        for attempt in range(tries):
            try:
                return self._start(timeout)
            except PortTaken:
                if self._fixed_port or self.listeners is not None or attempt == tries - 1:
                    raise
                self.port = free_port(self.host)

    def _start(self, timeout: float) -> None:
        conf = self._dir / "mosquitto.conf"
        conf.write_text(
            ("per_listener_settings true\n" if self.per_listener_settings else "")
            + (
                self.listeners
                if self.listeners is not None
                else f"listener {self.port} {self.host}\nallow_anonymous true\n"
            )
            # As root mosquitto would drop to user "mosquitto", who cannot write our temp dir.
            + ("user root\n" if os.geteuid() == 0 else "")
            + (
                f"persistence true\npersistence_location {self._dir}/\n"
                if self.persistence
                else "persistence false\n"
            )
            + f"log_dest file {self.log_path}\n"
            "max_inflight_messages 0\n"
            "max_queued_messages 0\n" + self.extra_conf,
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            [find_mosquitto(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(
                    errors="replace"
                )
                if "address already in use" in err.lower():
                    raise PortTaken(f"mosquitto: port {self.port} is taken: {err.strip()}")
                raise EdgeAgentError(f"mosquitto exited at start: {err.strip()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise EdgeAgentError(f"mosquitto did not listen on {self.host}:{self.port} in {timeout} s")

    def halt(self) -> None:
        """Stop it (SIGTERM; with persistence, sessions are saved) but keep its files."""
        if self.proc is not None:
            terminate(self.proc)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()

    def stop(self) -> None:
        """Stop it and remove its files."""
        self.halt()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalMosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
