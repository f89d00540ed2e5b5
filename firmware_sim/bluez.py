"""A virtual BlueZ: the simulated store served as ``org.bluez`` objects on a (private) D-Bus.

The real bleak BlueZ backend scans it exactly as it scans ``bluetoothd``: ``GetManagedObjects``
on ``/``, ``org.bluez.Adapter1`` per adapter (``Powered``, ``Discovering``, ``Roles``,
``StartDiscovery``, ``StopDiscovery``, ``SetDiscoveryFilter``), ``org.bluez.Device1`` objects that
appear with ``InterfacesAdded`` and change through ``PropertiesChanged`` (only the properties
that changed, as bluetoothd does), and ``org.bluez.AdvertisementMonitorManager1`` for passive
scanning. Devices not heard for ``device_timeout_s`` are removed, as bluetoothd removes temporary
devices.

Faults for tests: the process can be killed and started again (the ``org.bluez`` name vanishes
and comes back); ``org.firmwaresim.Control1`` at ``/org/firmwaresim`` removes and re-adds
adapters (unplug, plug), jams one (it stays powered and "discovering" but delivers nothing
until it is power-cycled, like a wedged controller) or breaks one (silent until unplugged and
plugged back).

Simplifications: one discovery session per adapter (not per client); monitors are not asked for
their patterns, every advert passes.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt32,
    DBusUInt64,
)
from dbus_fast.constants import PropertyAccess, RequestNameReply
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from edge_agent.errors import SourceError
from edge_agent.models import Advert

_LOGGER = logging.getLogger(__name__)

BLUEZ = "org.bluez"
CONTROL_PATH = "/org/firmwaresim"
CONTROL_INTERFACE = "org.firmwaresim.Control1"
DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusMfr = Annotated[dict[int, Variant], DBusSignature("a{qv}")]
DBusSvc = Annotated[dict[str, Variant], DBusSignature("a{sv}")]


def _failed(message: str) -> DBusError:
    return DBusError("org.bluez.Error.Failed", message)


def adapter_address(name: str) -> str:
    """A stable fake controller address per adapter name."""
    n = int(name.removeprefix("hci"))
    return f"00:1A:7D:DA:71:{n:02X}"


class Adapter1(ServiceInterface):
    """``org.bluez.Adapter1`` of one virtual controller."""

    def __init__(self, name: str, on_power: Callable[["Adapter1", bool], None]) -> None:
        super().__init__("org.bluez.Adapter1")
        self.adapter_name = name
        self.path = f"/org/bluez/{name}"
        self.powered = True
        self.discovering = False
        self.duplicate_data = False
        self.filter: dict[str, Any] = {}
        self._on_power = on_power

    @dbus_method()
    def StartDiscovery(self) -> None:
        if not self.powered:
            raise DBusError("org.bluez.Error.NotReady", "Resource Not Ready")
        if not self.discovering:
            self.discovering = True
            self.emit_properties_changed({"Discovering": True})

    @dbus_method()
    def StopDiscovery(self) -> None:
        if not self.powered:
            raise DBusError("org.bluez.Error.NotReady", "Resource Not Ready")
        if not self.discovering:
            raise _failed("No discovery started")
        self.discovering = False
        self.emit_properties_changed({"Discovering": False})

    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusSvc) -> None:
        self.filter = {k: v.value for k, v in properties.items()}
        self.duplicate_data = bool(self.filter.get("DuplicateData", False))

    @dbus_method()
    def GetDiscoveryFilters(self) -> DBusStrList:
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable"]

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath) -> None:
        raise _failed("not supported by the virtual BlueZ")

    @dbus_property(PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return adapter_address(self.adapter_name)

    @dbus_property(PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return f"firmware-sim-{self.adapter_name}"

    @dbus_property(PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return f"firmware-sim-{self.adapter_name}"

    @dbus_property(PropertyAccess.READ)
    def Class(self) -> DBusUInt32:
        return 0

    @dbus_property()
    def Powered(self) -> DBusBool:
        return self.powered

    @Powered.setter  # type: ignore[no-redef]
    def Powered(self, value: DBusBool) -> None:
        if value == self.powered:
            return
        self.powered = bool(value)
        changed: dict[str, Any] = {"Powered": self.powered}
        if not self.powered and self.discovering:
            # bluetoothd drops every discovery session when the controller goes down.
            self.discovering = False
            changed["Discovering"] = False
        self.emit_properties_changed(changed)
        self._on_power(self, self.powered)

    @dbus_property(PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return False

    @dbus_property(PropertyAccess.READ)
    def Pairable(self) -> DBusBool:
        return False

    @dbus_property(PropertyAccess.READ)
    def Discovering(self) -> DBusBool:
        return self.discovering

    @dbus_property(PropertyAccess.READ)
    def UUIDs(self) -> DBusStrList:
        return []

    @dbus_property(PropertyAccess.READ)
    def Modalias(self) -> DBusStr:
        return "usb:v1D6Bp0246d0542"

    @dbus_property(PropertyAccess.READ)
    def Roles(self) -> DBusStrList:
        return ["central", "peripheral"]


class AdvertisementMonitorManager1(ServiceInterface):
    """``org.bluez.AdvertisementMonitorManager1``: registered monitors make the adapter scan
    passively."""

    def __init__(self) -> None:
        super().__init__("org.bluez.AdvertisementMonitorManager1")
        self.monitors: set[str] = set()

    @dbus_method()
    def RegisterMonitor(self, application: DBusObjectPath) -> None:
        if application in self.monitors:
            raise DBusError("org.bluez.Error.AlreadyExists", "Already Exists")
        self.monitors.add(application)

    @dbus_method()
    def UnregisterMonitor(self, application: DBusObjectPath) -> None:
        if application not in self.monitors:
            raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
        self.monitors.discard(application)

    @dbus_property(PropertyAccess.READ)
    def SupportedMonitorTypes(self) -> DBusStrList:
        return ["or_patterns"]

    @dbus_property(PropertyAccess.READ)
    def SupportedFeatures(self) -> DBusStrList:
        return []


@functools.cache
def _device_class(has_name: bool, has_tx: bool) -> type[ServiceInterface]:
    """``org.bluez.Device1``; ``Name`` and ``TxPower`` exist only when advertised, as in BlueZ."""

    class Device1(ServiceInterface):
        def __init__(self, adapter: str, advert: Advert) -> None:
            super().__init__("org.bluez.Device1")
            self.adapter = adapter
            self.address = advert.address
            self.address_type = advert.address_type
            self.local_name = advert.local_name or ""
            self.rssi = advert.rssi
            self.tx_power = advert.tx_power if advert.tx_power is not None else 0
            self.mfr = _mfr(advert.manufacturer_data)
            self.svc = _svc(advert.service_data)
            self.uuids = list(advert.service_uuids)
            self.last_seen = time.monotonic()

        @dbus_property(PropertyAccess.READ)
        def Address(self) -> DBusStr:
            return self.address

        @dbus_property(PropertyAccess.READ)
        def AddressType(self) -> DBusStr:
            return self.address_type

        @dbus_property(PropertyAccess.READ, disabled=not has_name)
        def Name(self) -> DBusStr:
            return self.local_name

        @dbus_property(PropertyAccess.READ)
        def Alias(self) -> DBusStr:
            return self.local_name or self.address.replace(":", "-")

        @dbus_property(PropertyAccess.READ)
        def Adapter(self) -> DBusObjectPath:
            return f"/org/bluez/{self.adapter}"

        @dbus_property(PropertyAccess.READ)
        def Paired(self) -> DBusBool:
            return False

        @dbus_property(PropertyAccess.READ)
        def Bonded(self) -> DBusBool:
            return False

        @dbus_property(PropertyAccess.READ)
        def Trusted(self) -> DBusBool:
            return False

        @dbus_property(PropertyAccess.READ)
        def Blocked(self) -> DBusBool:
            return False

        @dbus_property(PropertyAccess.READ)
        def LegacyPairing(self) -> DBusBool:
            return False

        @dbus_property(PropertyAccess.READ)
        def Connected(self) -> DBusBool:
            return False

        @dbus_property(PropertyAccess.READ)
        def ServicesResolved(self) -> DBusBool:
            return False

        @dbus_property(PropertyAccess.READ)
        def RSSI(self) -> DBusInt16:
            return self.rssi

        @dbus_property(PropertyAccess.READ, disabled=not has_tx)
        def TxPower(self) -> DBusInt16:
            return self.tx_power

        @dbus_property(PropertyAccess.READ)
        def ManufacturerData(self) -> DBusMfr:
            return self.mfr

        @dbus_property(PropertyAccess.READ)
        def ServiceData(self) -> DBusSvc:
            return self.svc

        @dbus_property(PropertyAccess.READ)
        def UUIDs(self) -> DBusStrList:
            return self.uuids

    return Device1


def _mfr(data: Mapping[int, bytes]) -> dict[int, Variant]:
    return {k: Variant("ay", bytes(v)) for k, v in data.items()}


def _svc(data: Mapping[str, bytes]) -> dict[str, Variant]:
    return {k: Variant("ay", bytes(v)) for k, v in data.items()}


def device_path(adapter: str, address: str) -> str:
    """BlueZ's object path of a remote device."""
    return f"/org/bluez/{adapter}/dev_{address.upper().replace(':', '_')}"


@dataclass(slots=True)
class _Controller:
    """One virtual adapter and what it has seen."""

    adapter: Adapter1
    monitor: AdvertisementMonitorManager1 | None
    devices: dict[str, Any] = field(default_factory=dict)
    """Device1 objects by address."""
    jammed: bool = False
    broken: bool = False

    @property
    def listening(self) -> bool:
        scanning = self.adapter.discovering or bool(self.monitor and self.monitor.monitors)
        return self.adapter.powered and scanning and not self.jammed


class Control1(ServiceInterface):
    """``org.firmwaresim.Control1``: faults on demand for tests."""

    def __init__(self, bluez: "VirtualBlueZ") -> None:
        super().__init__(CONTROL_INTERFACE)
        self._bluez = bluez

    @dbus_method()
    def RemoveAdapter(self, name: DBusStr) -> None:
        if not self._bluez.remove_adapter(name):
            raise DBusError("org.firmwaresim.Error.NoSuchAdapter", name)

    @dbus_method()
    def AddAdapter(self, name: DBusStr) -> None:
        if not self._bluez.add_adapter(name):
            raise DBusError("org.firmwaresim.Error.AdapterExists", name)

    @dbus_method()
    def Jam(self, name: DBusStr) -> None:
        if not self._bluez.jam(name):
            raise DBusError("org.firmwaresim.Error.NoSuchAdapter", name)

    @dbus_method()
    def Break(self, name: DBusStr) -> None:
        if not self._bluez.jam(name, hard=True):
            raise DBusError("org.firmwaresim.Error.NoSuchAdapter", name)

    @dbus_property(PropertyAccess.READ)
    def Delivered(self) -> DBusUInt64:
        return self._bluez.delivered

    @dbus_property(PropertyAccess.READ)
    def Adapters(self) -> DBusDict:
        return {name: Variant("b", c.listening) for name, c in self._bluez.controllers.items()}


class VirtualBlueZ:
    """Owns ``org.bluez`` on a bus and turns adverts into BlueZ objects and signals."""

    def __init__(
        self,
        adapters: Sequence[str],
        *,
        bus_address: str | None = None,
        monitor: bool = True,
        device_timeout_s: float = 30.0,
    ) -> None:
        self.adapter_names = list(adapters)
        self.bus_address = bus_address
        self.with_monitor = monitor
        self.device_timeout_s = device_timeout_s
        self.controllers: dict[str, _Controller] = {}
        self.delivered = 0
        self.bus: MessageBus | None = None

    async def start(self) -> None:
        """Connect, export every adapter, then take the ``org.bluez`` name."""
        if self.bus_address:
            bus = MessageBus(bus_address=self.bus_address)
        else:
            bus = MessageBus(bus_type=BusType.SYSTEM)
        try:
            async with asyncio.timeout(10):
                await bus.connect()
        except (OSError, TimeoutError) as err:
            raise SourceError("bluez", f"cannot connect to D-Bus: {err}") from err
        self.bus = bus
        for name in self.adapter_names:
            self.add_adapter(name)
        bus.export(CONTROL_PATH, Control1(self))
        reply = await bus.request_name(BLUEZ)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise SourceError("bluez", f"{BLUEZ} is already owned on this bus")

    def stop(self) -> None:
        """Leave the bus (the name goes with the connection)."""
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    async def __aenter__(self) -> "VirtualBlueZ":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults

    def add_adapter(self, name: str) -> bool:
        """Plug an adapter in (powered, not scanning)."""
        if self.bus is None or name in self.controllers:
            return False
        adapter = Adapter1(name, self._powered)
        monitor = AdvertisementMonitorManager1() if self.with_monitor else None
        self.controllers[name] = _Controller(adapter, monitor)
        self.bus.export(adapter.path, adapter)
        if monitor is not None:
            self.bus.export(adapter.path, monitor)
        _LOGGER.info("adapter %s added", name)
        return True

    def remove_adapter(self, name: str) -> bool:
        """Unplug an adapter: its devices, then the adapter, vanish with ``InterfacesRemoved``."""
        ctl = self.controllers.pop(name, None)
        if ctl is None or self.bus is None:
            return False
        for address in list(ctl.devices):
            self.bus.unexport(device_path(name, address))
        self.bus.unexport(ctl.adapter.path)
        _LOGGER.info("adapter %s removed", name)
        return True

    def jam(self, name: str, hard: bool = False) -> bool:
        """Make an adapter deliver nothing until it is power-cycled (``hard``: until it is
        unplugged and plugged back, a dead controller)."""
        ctl = self.controllers.get(name)
        if ctl is None:
            return False
        ctl.jammed = True
        ctl.broken = ctl.broken or hard
        return True

    def _powered(self, adapter: Adapter1, on: bool) -> None:
        ctl = self.controllers.get(adapter.adapter_name)
        if ctl is None:
            return
        if not on and not ctl.broken:
            ctl.jammed = False  # a reset clears a wedged controller
            if ctl.monitor is not None:
                ctl.monitor.monitors.clear()

    # ----------------------------------------------------------------- adverts

    def deliver(self, adapter: str, advert: Advert) -> bool:
        """One advert heard by ``adapter``: a new device object, or the properties that changed."""
        ctl = self.controllers.get(adapter)
        if ctl is None or self.bus is None or not ctl.listening:
            return False
        dev = ctl.devices.get(advert.address)
        if dev is None:
            cls = _device_class(advert.local_name is not None, advert.tx_power is not None)
            dev = cls(adapter, advert)
            ctl.devices[advert.address] = dev
            self.bus.export(device_path(adapter, advert.address), dev)
            self.delivered += 1
            return True
        dev.last_seen = time.monotonic()
        changed: dict[str, Any] = {}
        if advert.rssi != dev.rssi:
            dev.rssi = changed["RSSI"] = advert.rssi
        mfr = _mfr(advert.manufacturer_data)
        if mfr and (ctl.adapter.duplicate_data or mfr != dev.mfr):
            dev.mfr = changed["ManufacturerData"] = mfr
        svc = _svc(advert.service_data)
        if svc and (ctl.adapter.duplicate_data or svc != dev.svc):
            dev.svc = changed["ServiceData"] = svc
        if changed:
            dev.emit_properties_changed(changed)
            self.delivered += 1
            return True
        return False

    def expire(self) -> int:
        """Remove devices not heard for ``device_timeout_s``."""
        if self.bus is None:
            return 0
        horizon = time.monotonic() - self.device_timeout_s
        n = 0
        for name, ctl in self.controllers.items():
            for address, dev in list(ctl.devices.items()):
                if dev.last_seen < horizon:
                    del ctl.devices[address]
                    self.bus.unexport(device_path(name, address))
                    n += 1
        return n
