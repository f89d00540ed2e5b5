"""Decoders against byte vectors from the public format specifications: bytes → whole object."""

from __future__ import annotations

import pytest

from edge_agent.models import (
    Advert,
    AltBeaconFrame,
    BTHomeFrame,
    EddystoneEIDFrame,
    EddystoneTLMFrame,
    EddystoneUIDFrame,
    EddystoneURLFrame,
    IBeaconFrame,
    Measurement,
    RuuviFrame,
)
from edge_agent.pipeline.decoders import (
    DecodeStats,
    FrameCache,
    Malformed,
    decode_advert,
    decode_altbeacon,
    decode_bthome,
    decode_eddystone,
    decode_ibeacon,
    decode_ruuvi,
)
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID, OBJECTS
from edge_agent.pipeline.decoders.eddystone import EDDYSTONE_UUID
from firmware_sim.encoders import encode_ibeacon


def test_ibeacon_apple_layout() -> None:
    # Apple's layout: 02 15 | proximity UUID | major | minor | measured power (-59 dBm = 0xC5)
    data = bytes.fromhex("0215e2c56db5dffb48d2b060d0f5a71096e000010002c5")
    assert decode_ibeacon(data) == IBeaconFrame(
        uuid="e2c56db5-dffb-48d2-b060-d0f5a71096e0", major=1, minor=2, tx_power=-59
    )


@pytest.mark.parametrize("data", ["0215" + "00" * 20, "0216" + "00" * 21, "0215" + "00" * 22])
def test_ibeacon_bad_length_is_malformed(data: str) -> None:
    assert decode_ibeacon(bytes.fromhex(data)) == Malformed("ibeacon", "length")


def test_ibeacon_other_apple_message_is_not_this_format() -> None:
    assert decode_ibeacon(bytes.fromhex("1005031c6e1f59")) is None


def test_altbeacon_spec_example() -> None:
    # AltBeacon spec: MFG ID 0x0118 (Radius Networks), beacon code BEAC, 20-byte id, ref RSSI, MFG
    data = bytes.fromhex(
        "beac" + "2f234454cf6d4a0fadf2f4911ba9ffa6" + "0001" + "0002" + "c5" + "00"
    )
    assert decode_altbeacon(0x0118, data) == AltBeaconFrame(
        manufacturer_id=0x0118,
        beacon_id_bytes=bytes.fromhex("2f234454cf6d4a0fadf2f4911ba9ffa600010002"),
        tx_power=-59,
        reserved=0,
    )
    assert decode_altbeacon(0x0118, data[:-1]) == Malformed("altbeacon", "length")


def test_eddystone_uid_with_and_without_rfu() -> None:
    body = "00" + "e7" + "0102030405060708090a" + "0b0c0d0e0f10"
    expected = EddystoneUIDFrame("0102030405060708090a", "0b0c0d0e0f10", -25)
    assert decode_eddystone(bytes.fromhex(body + "0000")) == expected
    assert decode_eddystone(bytes.fromhex(body)) == expected
    assert decode_eddystone(bytes.fromhex(body + "00")) == Malformed("eddystone", "uid_length")


def test_eddystone_url_spec_example() -> None:
    # Spec example: https://goo.gl/S6zT6P as 0x03 "goo.gl/S6zT6P"
    data = bytes.fromhex("10eb03") + b"goo.gl/S6zT6P"
    assert decode_eddystone(data) == EddystoneURLFrame("https://goo.gl/S6zT6P", -21)
    # expansion codes: http://www. + "example" + .com/ + "shop"
    data = bytes.fromhex("10f800") + b"example\x00shop"
    assert decode_eddystone(data) == EddystoneURLFrame("http://www.example.com/shop", -8)


def test_eddystone_url_bad_bytes() -> None:
    assert decode_eddystone(bytes.fromhex("10f804") + b"x") == Malformed("eddystone", "url_scheme")
    assert decode_eddystone(bytes.fromhex("10f803") + b"a\x20b") == Malformed(
        "eddystone", "url_byte"
    )


def test_eddystone_tlm() -> None:
    # version 0, 3000 mV, 25.5 °C (0x1980), 1000 PDUs, 3600.0 s
    data = bytes.fromhex("20000bb81980000003e800008ca0")
    assert decode_eddystone(data) == EddystoneTLMFrame(
        battery_mv=3000, temperature_c=25.5, adv_count=1000, uptime_s=3600.0
    )
    unsupported = bytes.fromhex("2000000080000000000100000001")
    frame = decode_eddystone(unsupported)
    assert isinstance(frame, EddystoneTLMFrame)
    assert frame.battery_mv is None and frame.temperature_c is None
    negative = bytes.fromhex("20000bb8ff800000000100000001")
    assert decode_eddystone(negative) == EddystoneTLMFrame(3000, -0.5, 1, 0.1)
    assert decode_eddystone(bytes.fromhex("2001") + b"\x00" * 16) is None  # encrypted TLM


def test_eddystone_eid_is_recognised() -> None:
    data = bytes.fromhex("30f00011223344556677")
    assert decode_eddystone(data) == EddystoneEIDFrame("0011223344556677", -16)


def test_bthome_spec_temperature_humidity() -> None:
    # bthome.io example: temperature 25.06 °C, humidity 50.55 %
    assert decode_bthome(bytes.fromhex("4002ca0903bf13")) == BTHomeFrame(
        encrypted=False,
        trigger_based=False,
        packet_id=None,
        measurements=(
            Measurement("temperature", 25.06, "°C", 0x02),
            Measurement("humidity", 50.55, "%", 0x03),
        ),
    )


def test_bthome_mixed_objects() -> None:
    data = bytes.fromhex(
        "44"  # v2, trigger based
        "0009"  # packet id 9
        "0161"  # battery 97 %
        "04138a01"  # pressure 1008.83 hPa
        "1a01"  # door open
        "3a02"  # button double press
        "3c0103"  # dimmer rotate left 3 steps
        "5804"  # temperature 1.4 °C (0.35 steps)
        "5304"
        + b"shop".hex()  # text
        + "5402beef"  # raw
        "f1"
        "04030201"  # firmware 1.2.3.4
    )
    assert decode_bthome(data) == BTHomeFrame(
        encrypted=False,
        trigger_based=True,
        packet_id=9,
        measurements=(
            Measurement("battery", 97, "%", 0x01),
            Measurement("pressure", 1008.83, "hPa", 0x04),
            Measurement("door", True, None, 0x1A),
            Measurement("button", "double_press", None, 0x3A),
            Measurement("dimmer", "rotate_left:3", None, 0x3C),
            Measurement("temperature", 1.4, "°C", 0x58),
            Measurement("text", "shop", None, 0x53),
            Measurement("raw", "beef", None, 0x54),
            Measurement("firmware_version", "1.2.3.4", None, 0xF1),
        ),
    )


def test_bthome_signed_and_scaled() -> None:
    frame = decode_bthome(bytes.fromhex("400218fc3ffeff5cffffffff"))
    assert isinstance(frame, BTHomeFrame)
    assert [m.value for m in frame.measurements] == [-10.0, -0.2, -0.01]


def test_bthome_every_object_in_the_table_decodes() -> None:
    for oid, obj in OBJECTS.items():
        body = bytes([1, 0x61]) if obj.length == 0 else bytes(obj.length)
        frame = decode_bthome(bytes([0x40, oid]) + body)
        assert isinstance(frame, BTHomeFrame), hex(oid)
        assert frame.measurements[0].name == obj.name
        assert frame.measurements[0].object_id == oid


@pytest.mark.parametrize(
    ("hexdata", "reason"),
    [
        ("", "empty"),
        ("20", "version"),
        ("4002ca", "truncated"),
        ("40ff00", "unknown_object"),
        ("401a02", "binary_value"),
        ("403a07", "button_event"),
        ("40530a41", "truncated"),
        ("405302fffe", "text_encoding"),
        ("4000", "truncated"),
    ],
)
def test_bthome_malformed(hexdata: str, reason: str) -> None:
    assert decode_bthome(bytes.fromhex(hexdata)) == Malformed("bthome", reason)


def test_bthome_encrypted_is_recognised_not_decoded() -> None:
    assert decode_bthome(bytes.fromhex("41" + "00" * 12)) == BTHomeFrame(True, False, None, ())


# The four vectors of Ruuvi's data format 5 specification.
RUUVI_VECTORS = {
    "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F": RuuviFrame(
        24.3, 53.49, 100044, (4, -4, 1036), 2977, 4, 66, 205, "CB:B8:33:4C:88:4F"
    ),
    "057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F": RuuviFrame(
        163.835, 163.835, 115534, (32767, 32767, 32767), 3646, 20, 254, 65534, "CB:B8:33:4C:88:4F"
    ),
    "058001000000008001800180010000000000CBB8334C884F": RuuviFrame(
        -163.835, 0.0, 50000, (-32767, -32767, -32767), 1600, -40, 0, 0, "CB:B8:33:4C:88:4F"
    ),
    "058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF": RuuviFrame(
        None, None, None, (None, None, None), None, None, None, None, None
    ),
}


@pytest.mark.parametrize(("hexdata", "expected"), list(RUUVI_VECTORS.items()))
def test_ruuvi_spec_vectors(hexdata: str, expected: RuuviFrame) -> None:
    assert decode_ruuvi(bytes.fromhex(hexdata)) == expected


def test_ruuvi_other_format_and_length() -> None:
    assert decode_ruuvi(bytes.fromhex("0300")) is None
    assert decode_ruuvi(bytes.fromhex("0512")) == Malformed("ruuvi", "length")


def _advert(**kw: object) -> Advert:
    base: dict[str, object] = dict(
        address="AA:BB:CC:DD:EE:FF", rssi=-60, t=0.0, wall=0.0, receiver="hci0"
    )
    base.update(kw)
    return Advert(**base)  # type: ignore[arg-type]


def test_decode_advert_routes_and_counts() -> None:
    stats = DecodeStats()
    ib = bytes.fromhex("0215e2c56db5dffb48d2b060d0f5a71096e000010002c5")
    frames = decode_advert(
        _advert(
            manufacturer_data={0x004C: ib}, service_data={BTHOME_UUID: bytes.fromhex("4002ca09")}
        ),
        stats,
    )
    assert [type(f).__name__ for f in frames] == ["IBeaconFrame", "BTHomeFrame"]
    assert decode_advert(_advert(manufacturer_data={0x0006: b"\x01\x09"}), stats) == []
    bad = _advert(
        service_data={EDDYSTONE_UUID: b"\x00\x01"}, manufacturer_data={0x004C: b"\x02\x15"}
    )
    assert decode_advert(bad, stats) == []
    assert (stats.adverts, stats.frames, stats.unknown) == (3, 2, 1)
    assert stats.malformed == {"eddystone:uid_length": 1, "ibeacon:length": 1}


def test_the_frame_cache_decodes_a_payload_once_and_counts_every_advert_alike() -> None:
    """The same adverts through the cache and without it: the same frames and the same
    counters (malformed, partial, unknown, frames) — the cache only skips the decoding."""
    ib = bytes.fromhex("0215e2c56db5dffb48d2b060d0f5a71096e000010002c5")
    adverts = [
        _advert(manufacturer_data={0x004C: ib}),
        _advert(manufacturer_data={0x004C: b"\x02\x15"}),  # malformed
        _advert(service_data={BTHOME_UUID: bytes.fromhex("4002ca09ff01")}),  # partial
        _advert(service_data={BTHOME_UUID: bytes.fromhex("4002ca0903bf13")}),
        _advert(manufacturer_data={0x0006: b"\x01\x09"}),  # unknown
        _advert(service_data={EDDYSTONE_UUID: bytes.fromhex("20000bb80a0000000e1000000258")}),
    ] * 5
    plain, cached, cache = DecodeStats(), DecodeStats(), FrameCache()
    for adv in adverts:
        assert decode_advert(adv, cached, cache=cache) == decode_advert(adv, plain)
    assert cached == plain and plain.malformed and plain.partial and plain.unknown
    assert (cache.misses, cache.hits) == (6, 24)


def test_the_frame_cache_is_bounded_and_skips_encrypted_and_keyed_bthome() -> None:
    from edge_agent.pipeline.decoders import BindKeys

    cache, stats = FrameCache(size=8), DecodeStats()
    for n in range(1000):  # 1 000 different payloads: two generations of 8 kept at most
        data = encode_ibeacon(IBeaconFrame("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, n, -59))
        decode_advert(_advert(manufacturer_data={0x004C: data}), stats, cache=cache)
    assert len(cache._mfr) <= 16 and cache.misses == 1000
    clear = bytes.fromhex("4002ca0903bf13")
    keyed = "AA:BB:CC:DD:EE:01"
    keys = BindKeys({keyed: bytes(16)})
    encrypted = bytes.fromhex("41a47266c95f730011223378237214")
    before = cache.misses + cache.hits
    for _ in range(3):
        decode_advert(_advert(address=keyed, service_data={BTHOME_UUID: clear}), stats, keys, cache)
        decode_advert(_advert(service_data={BTHOME_UUID: encrypted}), stats, keys, cache)
    assert cache.misses + cache.hits == before  # neither went through the cache
    assert keys.stats.downgrade == 3  # a keyed device sending in clear: counted every time
