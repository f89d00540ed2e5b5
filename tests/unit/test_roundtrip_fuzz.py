"""firmware_sim encoders are exact inverses of the decoders (round trips), and arbitrary bytes
give a frame or "not this format", never an exception (fuzzing). Hypothesis prints the failing
example and its seed; rerun one with ``pytest --hypothesis-seed=N``.
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.models import (
    Advert,
    AltBeaconFrame,
    BTHomeFrame,
    EddystoneEIDFrame,
    EddystoneTLMFrame,
    EddystoneUIDFrame,
    EddystoneURLFrame,
    Frame,
    IBeaconFrame,
    Measurement,
    RuuviFrame,
)
from edge_agent.pipeline.decoders import (
    DecodeStats,
    Malformed,
    decode_advert,
    decode_altbeacon,
    decode_bthome,
    decode_eddystone,
    decode_ibeacon,
    decode_ruuvi,
)
from edge_agent.pipeline.decoders.bthome import BUTTON_EVENTS, DIMMER_EVENTS, OBJECTS, Kind
from edge_agent.pipeline.decoders.eddystone import URL_SCHEMES
from firmware_sim import encoders

s8 = st.integers(-128, 127)
u16 = st.integers(0, 0xFFFF)
hexbytes = lambda n: st.binary(min_size=n, max_size=n).map(bytes.hex)  # noqa: E731


@st.composite
def uuids(draw: st.DrawFn) -> str:
    h = draw(hexbytes(16))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@given(uuids(), u16, u16, s8)
def test_ibeacon_round_trip(uuid: str, major: int, minor: int, tx: int) -> None:
    frame = IBeaconFrame(uuid, major, minor, tx)
    assert decode_ibeacon(encoders.encode_ibeacon(frame)) == frame


@given(u16, st.binary(min_size=20, max_size=20), s8, st.integers(0, 255))
def test_altbeacon_round_trip(mfr: int, bid: bytes, tx: int, reserved: int) -> None:
    frame = AltBeaconFrame(mfr, bid, tx, reserved)
    company, data = encoders.encode_altbeacon(frame)
    assert decode_altbeacon(company, data) == frame


@given(hexbytes(10), hexbytes(6), s8, st.booleans())
def test_eddystone_uid_round_trip(ns: str, inst: str, tx: int, rfu: bool) -> None:
    frame = EddystoneUIDFrame(ns, inst, tx)
    assert decode_eddystone(encoders.encode_eddystone_uid(frame, rfu)) == frame


URL_CHARS = string.ascii_letters + string.digits + "-._~/?=&%#+!$'()*,;:@"


@given(st.sampled_from(URL_SCHEMES), st.text(URL_CHARS, min_size=0, max_size=17), s8)
def test_eddystone_url_round_trip(scheme: str, rest: str, tx: int) -> None:
    frame = EddystoneURLFrame(scheme + rest, tx)
    assert decode_eddystone(encoders.encode_eddystone_url(frame)) == frame


@given(
    st.one_of(st.none(), st.integers(1, 0xFFFF)),
    st.one_of(st.none(), st.integers(-0x7FFF, 0x7FFF).map(lambda r: r / 256.0)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1).map(lambda r: r / 10.0),
)
def test_eddystone_tlm_round_trip(
    batt: int | None, temp: float | None, cnt: int, up: float
) -> None:
    frame = EddystoneTLMFrame(batt, temp, cnt, up)
    assert decode_eddystone(encoders.encode_eddystone_tlm(frame)) == frame


@given(hexbytes(8), s8)
def test_eddystone_eid_round_trip(eid: str, tx: int) -> None:
    frame = EddystoneEIDFrame(eid, tx)
    assert decode_eddystone(encoders.encode_eddystone_eid(frame)) == frame


@st.composite
def measurements(draw: st.DrawFn) -> Measurement:
    oid = draw(st.sampled_from(sorted(OBJECTS)))
    obj = OBJECTS[oid]
    value: float | int | bool | str
    if obj.kind is Kind.NUMBER:
        bits = 8 * obj.length
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if obj.signed else (0, 2**bits - 1)
        raw = draw(st.integers(lo, hi))
        value = raw if obj.factor == 1 else round(raw * obj.factor, obj.decimals)
    elif obj.kind is Kind.BINARY:
        value = draw(st.booleans())
    elif obj.kind is Kind.BUTTON:
        value = draw(st.sampled_from(sorted(BUTTON_EVENTS.values())))
    elif obj.kind is Kind.DIMMER:
        value = (
            f"{draw(st.sampled_from(sorted(DIMMER_EVENTS.values())))}:{draw(st.integers(0, 255))}"
        )
    elif obj.kind is Kind.TEXT:
        value = draw(st.text(max_size=20).filter(lambda s: len(s.encode()) < 256))
    elif obj.kind is Kind.RAW:
        value = draw(st.binary(max_size=30)).hex()
    else:
        value = ".".join(str(draw(st.integers(0, 255))) for _ in range(obj.length))
    return Measurement(obj.name, value, obj.unit, oid)


@given(
    st.booleans(), st.one_of(st.none(), st.integers(0, 255)), st.lists(measurements(), max_size=8)
)
def test_bthome_round_trip(trigger: bool, packet: int | None, ms: list[Measurement]) -> None:
    frame = BTHomeFrame(False, trigger, packet, tuple(ms))
    assert decode_bthome(encoders.encode_bthome(frame)) == frame


def _na(strategy: st.SearchStrategy[int]) -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), strategy)


@given(
    _na(st.integers(-32767, 32767).map(lambda r: round(r * 0.005, 3))),
    _na(st.integers(0, 65534).map(lambda r: round(r * 0.0025, 4))),
    _na(st.integers(50000, 50000 + 65534)),
    st.tuples(
        _na(st.integers(-32767, 32767)),
        _na(st.integers(-32767, 32767)),
        _na(st.integers(-32767, 32767)),
    ),
    _na(st.integers(1600, 1600 + 2046)),
    _na(st.integers(0, 30).map(lambda r: r * 2 - 40)),
    _na(st.integers(0, 254)),
    _na(st.integers(0, 65534)),
    st.one_of(
        st.none(),
        st.binary(min_size=6, max_size=6)
        .filter(lambda b: b != b"\xff" * 6)
        .map(lambda b: ":".join(f"{x:02X}" for x in b)),
    ),
)
def test_ruuvi_round_trip(
    temp: float | None,
    hum: float | None,
    pres: int | None,
    accel: tuple[int | None, int | None, int | None],
    batt: int | None,
    tx: int | None,
    moves: int | None,
    seq: int | None,
    mac: str | None,
) -> None:
    frame = RuuviFrame(temp, hum, pres, accel, batt, tx, moves, seq, mac)
    assert decode_ruuvi(encoders.encode_ruuvi(frame)) == frame


FRAME_TYPES = (
    IBeaconFrame,
    AltBeaconFrame,
    EddystoneUIDFrame,
    EddystoneURLFrame,
    EddystoneTLMFrame,
    EddystoneEIDFrame,
    BTHomeFrame,
    RuuviFrame,
    Malformed,
    type(None),
)


def _prefixed(prefix: bytes) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=40).map(lambda b: prefix + b)


@given(st.one_of(st.binary(max_size=60), _prefixed(b"\x02\x15")))
def test_fuzz_ibeacon(data: bytes) -> None:
    assert isinstance(decode_ibeacon(data), FRAME_TYPES)


@given(u16, st.one_of(st.binary(max_size=60), _prefixed(b"\xbe\xac")))
def test_fuzz_altbeacon(mfr: int, data: bytes) -> None:
    assert isinstance(decode_altbeacon(mfr, data), FRAME_TYPES)


@given(st.one_of(st.binary(max_size=60), *(_prefixed(bytes([t])) for t in (0, 0x10, 0x20, 0x30))))
def test_fuzz_eddystone(data: bytes) -> None:
    assert isinstance(decode_eddystone(data), FRAME_TYPES)


@given(st.one_of(st.binary(max_size=60), _prefixed(b"\x40"), _prefixed(b"\x44")))
def test_fuzz_bthome(data: bytes) -> None:
    assert isinstance(decode_bthome(data), FRAME_TYPES)


@given(st.one_of(st.binary(max_size=60), _prefixed(b"\x05")))
def test_fuzz_ruuvi(data: bytes) -> None:
    assert isinstance(decode_ruuvi(data), FRAME_TYPES)


@given(
    st.dictionaries(st.sampled_from([0x004C, 0x0499, 0x0118, 0xFFFF]), st.binary(max_size=40)),
    st.dictionaries(
        st.sampled_from(
            [
                "0000feaa-0000-1000-8000-00805f9b34fb",
                "0000fcd2-0000-1000-8000-00805f9b34fb",
                "0000180f-0000-1000-8000-00805f9b34fb",
            ]
        ),
        st.binary(max_size=40),
    ),
)
def test_fuzz_whole_advert(mfr: dict[int, bytes], svc: dict[str, bytes]) -> None:
    stats = DecodeStats()
    advert = Advert(
        "AA:BB:CC:DD:EE:FF", -60, 0.0, 0.0, "hci0", manufacturer_data=mfr, service_data=svc
    )
    frames: list[Frame] = decode_advert(advert, stats)
    assert stats.adverts == 1
    assert stats.frames == len(frames)
