"""Follows BlueZ on the system bus: is ``org.bluez`` running, which adapters does it have, are
they powered. The scanner supervisor decides from this when to wait, start, restart or move.

It keeps its own D-Bus connection (separate from bleak's), reconnects when the bus goes away,
and never raises out of :meth:`BluezWatch.run`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import AuthError, DBusError

_LOGGER = logging.getLogger(__name__)

BLUEZ = "org.bluez"
ADAPTER_INTERFACE = "org.bluez.Adapter1"
CALL_TIMEOUT_S = 5.0
_ADAPTER_PATH = re.compile(r"^/org/bluez/(hci\d+)$")
_RULES = (
    f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{BLUEZ}'",
    f"type='signal',sender='{BLUEZ}',interface='org.freedesktop.DBus.ObjectManager'",
    f"type='signal',sender='{BLUEZ}',interface='org.freedesktop.DBus.Properties',"
    f"member='PropertiesChanged',arg0='{ADAPTER_INTERFACE}'",
)


class BluezWatch:
    """The state of BlueZ as seen over D-Bus, with a wake-up for whoever waits on a change."""

    def __init__(self, bus_address: str | None = None) -> None:
        self.bus_address = bus_address
        self.owner: str | None = None
        """Unique bus name of the running ``bluetoothd``; ``None`` while it is not running."""
        self.adapters: dict[str, bool] = {}
        """Adapters BlueZ has now (``hci0`` …) and whether each is powered."""
        self.generation = 0
        """Bumped every time BlueZ goes away or comes back."""
        self.bus_connected = False
        self._bus: MessageBus | None = None
        self._changed = asyncio.Event()
        self._refresh_wanted = asyncio.Event()
        self.first_look = asyncio.Event()
        """Set once the watch has looked at the bus (connected and read BlueZ, or failed to)."""

    # ----------------------------------------------------------------- waiting

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, timeout: float) -> None:
        """Return on the next change, or after ``timeout`` seconds."""
        event = self._changed
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass

    # ----------------------------------------------------------------- the bus

    async def run(self) -> None:
        """Stay connected to the system bus until cancelled (reconnecting with backoff)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._refresher(), name="bluez-refresh")
            await self._keep_connected()

    async def _refresher(self) -> None:
        """Re-read BlueZ whenever a signal asks for it (signal handlers must not await)."""
        while True:
            await self._refresh_wanted.wait()
            self._refresh_wanted.clear()
            try:
                await self.refresh()
            except (DBusError, TimeoutError, OSError, EOFError) as err:
                # A stuck or vanishing bus: the next signal or reconnect reads BlueZ again.
                _LOGGER.warning("cannot read BlueZ's state: %s", err)

    async def _keep_connected(self) -> None:
        backoff = 1.0
        while True:
            try:
                bus = await self._connect()
            except (OSError, TimeoutError, AuthError, DBusError, EOFError) as err:
                self.first_look.set()
                _LOGGER.warning("system bus unavailable (%s); retrying in %.0f s", err, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            try:
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            except Exception as err:
                _LOGGER.debug("system bus disconnect: %s", err)
            _LOGGER.warning("lost the system bus; reconnecting")
            self._bus = None
            self.bus_connected = False
            self._lost()

    async def _connect(self) -> MessageBus:
        if self.bus_address:
            bus = MessageBus(bus_address=self.bus_address)
        else:
            bus = MessageBus(bus_type=BusType.SYSTEM)
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await bus.connect()
                bus.add_message_handler(self._on_message)
                for rule in _RULES:
                    await self._call(bus, "AddMatch", "s", [rule], dbus=True)
        except BaseException:
            bus.disconnect()
            raise
        self._bus = bus
        self.bus_connected = True
        await self.refresh()
        return bus

    async def _call(
        self,
        bus: MessageBus,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
        *,
        dbus: bool = False,
        path: str = "/",
        interface: str | None = None,
    ) -> Message:
        msg = Message(
            destination="org.freedesktop.DBus" if dbus else BLUEZ,
            path="/org/freedesktop/DBus" if dbus else path,
            interface=interface or ("org.freedesktop.DBus" if dbus else None),
            member=member,
            signature=signature,
            body=body or [],
        )
        async with asyncio.timeout(CALL_TIMEOUT_S):
            reply = await bus.call(msg)
        if reply is None:
            raise DBusError("org.freedesktop.DBus.Error.NoReply", member)
        if reply.message_type == MessageType.ERROR:
            raise DBusError(reply.error_name or "error", str(reply.body[0] if reply.body else ""))
        return reply

    async def refresh(self) -> None:
        """Read the owner of ``org.bluez`` and its adapters afresh."""
        bus = self._bus
        if bus is None:
            return
        try:
            reply = await self._call(bus, "GetNameOwner", "s", [BLUEZ], dbus=True)
            owner: str | None = str(reply.body[0])
        except DBusError:
            owner = None
        adapters: dict[str, bool] = {}
        if owner is not None:
            try:
                reply = await self._call(
                    bus,
                    "GetManagedObjects",
                    interface="org.freedesktop.DBus.ObjectManager",
                )
            except (DBusError, TimeoutError) as err:
                _LOGGER.warning("BlueZ does not answer GetManagedObjects: %s", err)
            else:
                for path, interfaces in reply.body[0].items():
                    m = _ADAPTER_PATH.match(path)
                    if m and ADAPTER_INTERFACE in interfaces:
                        adapters[m.group(1)] = _powered(interfaces[ADAPTER_INTERFACE])
        if owner != self.owner:
            self.generation += 1
            if owner is not None:
                _LOGGER.info("BlueZ is running (%s adapter(s))", len(adapters))
        self.owner = owner
        self.adapters = adapters
        self.first_look.set()
        self._notify()

    def _lost(self) -> None:
        if self.owner is not None:
            self.generation += 1
        self.owner = None
        self.adapters = {}
        self._notify()

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        member = msg.member
        if member == "NameOwnerChanged":
            name, _old, new = msg.body
            if name != BLUEZ:
                return
            if new:
                self._refresh_wanted.set()
            else:
                _LOGGER.warning("BlueZ went away (org.bluez has no owner)")
                self._lost()
        elif member == "InterfacesAdded":
            path, interfaces = msg.body
            m = _ADAPTER_PATH.match(path)
            if m and ADAPTER_INTERFACE in interfaces:
                self.adapters[m.group(1)] = _powered(interfaces[ADAPTER_INTERFACE])
                _LOGGER.info("adapter %s appeared", m.group(1))
                self._notify()
        elif member == "InterfacesRemoved":
            path, names = msg.body
            m = _ADAPTER_PATH.match(path)
            if m and ADAPTER_INTERFACE in names and self.adapters.pop(m.group(1), None) is not None:
                _LOGGER.warning("adapter %s removed", m.group(1))
                self._notify()
        elif member == "PropertiesChanged":
            m = _ADAPTER_PATH.match(msg.path or "")
            _iface, changed, _invalidated = msg.body
            if m and "Powered" in changed and m.group(1) in self.adapters:
                self.adapters[m.group(1)] = bool(changed["Powered"].value)
                self._notify()

    # ----------------------------------------------------------------- actions

    async def set_powered(self, adapter: str, on: bool) -> None:
        """Power an adapter on or off (raises ``DBusError`` or ``TimeoutError``)."""
        bus = self._bus
        if bus is None:
            raise DBusError("org.freedesktop.DBus.Error.Disconnected", "no system bus")
        await self._call(
            bus,
            "Set",
            "ssv",
            [ADAPTER_INTERFACE, "Powered", Variant("b", on)],
            path=f"/org/bluez/{adapter}",
            interface="org.freedesktop.DBus.Properties",
        )

    def close(self) -> None:
        """Leave the bus."""
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None


def _powered(props: dict[str, Variant]) -> bool:
    value = props.get("Powered")
    return bool(value.value) if value is not None else False
