"""BTHome v2 beyond the happy path: partial packets keep what they can, the objects and events
the specification added, and encrypted payloads (vectors from the specification and the
reference decoder's tests), with replay and wrong keys counted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.config.checks import load_checked
from edge_agent.errors import ConfigError
from edge_agent.models import Advert, BTHomeFrame, Measurement
from edge_agent.pipeline import decoders
from edge_agent.pipeline.decoders import BindKeys, DecodeStats, Malformed, decode_advert
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID, decode_bthome
from edge_agent.pipeline.decoders.bthome_keys import seal
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.secrets import bthome_keys, parse_bthome_keys
from tests.support.cli import run_cli
from tests.support.configs import MINIMAL
from tests.support.ticks import run_ticks

T = Measurement("temperature", 25.06, "°C", 0x02)
H = Measurement("humidity", 50.55, "%", 0x03)
SPEC_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SPEC_MAC = "54:48:E6:8F:80:A5"


def frame(hexdata: str, **kw: object) -> BTHomeFrame | Malformed | None:
    return decode_bthome(bytes.fromhex(hexdata), **kw)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- partial packets


@pytest.mark.parametrize(
    ("hexdata", "kept", "reason"),
    [
        # an unknown id ends the parse; what came before it stays
        ("4002ca0903bf13ee0102", (T, H), "unknown_object"),
        # a truncated last object
        ("4002ca0903bf1304", (T, H), "truncated"),
        ("4002ca0903bf130413", (T, H), "truncated"),
        # a binary value above 1 skips that object only
        ("4002ca091a0203bf13", (T, H), "binary_value"),
        # text that is not UTF-8 skips that object only (its length is known)
        ("4002ca095302fffe03bf13", (T, H), "text_encoding"),
        # an unknown button event skips that object only
        ("4002ca093a0703bf13", (T, H), "button_event"),
    ],
)
def test_a_bad_object_keeps_the_valid_ones(
    hexdata: str, kept: tuple[Measurement, ...], reason: str
) -> None:
    assert frame(hexdata) == BTHomeFrame(False, False, None, kept, reason)


def test_a_packet_with_nothing_valid_is_malformed() -> None:
    assert frame("40ee01") == Malformed("bthome", "unknown_object")
    assert frame("401a02") == Malformed("bthome", "binary_value")


def test_partial_frames_are_counted_where_field_engineers_see_them() -> None:
    stats = DecodeStats()
    adv = Advert(
        "AA:BB:CC:DD:EE:FF",
        -60,
        0.0,
        0.0,
        "hci0",
        service_data={BTHOME_UUID: bytes.fromhex("4002ca09ee01")},
    )
    (got,) = decode_advert(adv, stats)
    assert isinstance(got, BTHomeFrame) and got.measurements == (T,)
    assert stats.partial == {"bthome:unknown_object": 1}
    assert not stats.malformed and stats.frames == 1


def test_objects_and_events_the_table_lacked() -> None:
    got = frame("4000073a813b05650c")
    assert got == BTHomeFrame(
        False,
        False,
        7,
        (
            Measurement("button", "hold_release", None, 0x3A),
            Measurement("command", 5, None, 0x3B),
            Measurement("settings_revision", 12, None, 0x65),
        ),
    )


def test_a_memoryview_payload_with_text_decodes() -> None:
    data = bytes.fromhex("40530568656c6c6f")
    assert decode_bthome(memoryview(data)) == decode_bthome(data)
    got = decode_bthome(memoryview(data))
    assert isinstance(got, BTHomeFrame) and got.measurements[0].value == "hello"


def test_a_decoder_that_raises_is_counted_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(decoders, "decode_bthome", broken)
    stats = DecodeStats()
    adv = Advert(
        "AA:BB:CC:DD:EE:FF",
        -60,
        0.0,
        0.0,
        "hci0",
        manufacturer_data={0x004C: bytes.fromhex("0215e2c56db5dffb48d2b060d0f5a71096e000010002c5")},
        service_data={BTHOME_UUID: bytes.fromhex("4002ca09")},
    )
    frames = decode_advert(adv, stats)
    assert len(frames) == 1  # the iBeacon in the same advert survives
    assert stats.malformed == {"bthome:error": 1}


# -------------------------------------------------------------------------------- encrypted


def test_specification_vector_decrypts() -> None:
    keys = BindKeys({SPEC_MAC: SPEC_KEY})
    got = frame("41a47266c95f730011223378237214", address=SPEC_MAC, keys=keys)
    assert got == BTHomeFrame(True, False, None, (T, H))
    assert keys.stats.decrypted == 1


def test_mac_included_vector_decrypts_whatever_address_carried_it() -> None:
    keys = BindKeys({SPEC_MAC: SPEC_KEY})
    data = "43a5808fe64854f196c06ffb4900112233f08ecbde"
    got = frame(data, address="11:22:33:44:55:66", keys=keys)
    assert isinstance(got, BTHomeFrame) and got.measurements == (T, H)


def test_reference_button_vector_decrypts() -> None:
    keys = BindKeys({"B4:35:22:F5:3D:A4": bytes.fromhex("90bffd73cb6b26ef58a7a8eba9232036")})
    got = frame(
        "450aeb84467f85ba010000318878 8c".replace(" ", ""), address="b4:35:22:f5:3d:a4", keys=keys
    )
    assert isinstance(got, BTHomeFrame) and got.trigger_based
    assert any(m.name == "button" for m in got.measurements)


def test_counter_must_increase() -> None:
    keys = BindKeys({SPEC_MAC: SPEC_KEY})
    first = "41e445f3c9962b332211006c7c4519"  # counter 0x00112233
    second = "413e932cc7175f34221100553876af"  # counter 0x00112234
    older = "41723d3035fb88322211009e7414c0"  # counter 0x00112232
    assert isinstance(frame(first, address=SPEC_MAC, keys=keys), BTHomeFrame)
    # the same packet from another receiver: a copy, not a replay
    assert isinstance(frame(first, address=SPEC_MAC, keys=keys), BTHomeFrame)
    assert isinstance(frame(second, address=SPEC_MAC, keys=keys), BTHomeFrame)
    assert frame(first, address=SPEC_MAC, keys=keys) == Malformed("bthome", "replayed")
    assert frame(older, address=SPEC_MAC, keys=keys) == Malformed("bthome", "replayed")
    s = keys.stats
    assert (s.decrypted, s.copies, s.replayed) == (2, 1, 2)


def test_a_counter_that_restarts_from_zero_is_accepted() -> None:
    keys = BindKeys({SPEC_MAC: SPEC_KEY})
    clear = bytes.fromhex("02ca0903bf13")
    for counter in (5000, 3):
        body = seal(SPEC_KEY, SPEC_MAC, 0x41, clear, counter)
        got = decode_bthome(bytes([0x41]) + body, SPEC_MAC, keys)
        assert isinstance(got, BTHomeFrame) and got.measurements == (T, H), counter


def test_wrong_key_is_counted_and_reported() -> None:
    keys = BindKeys({SPEC_MAC: bytes.fromhex("814aac74c4f17b6c1581e1ab87816b99")})
    stats = DecodeStats()
    adv = Advert(
        SPEC_MAC,
        -60,
        0.0,
        0.0,
        "hci0",
        service_data={BTHOME_UUID: bytes.fromhex("41a47266c95f730011223378237214")},
    )
    assert decode_advert(adv, stats, keys) == []
    assert stats.malformed == {"bthome:wrong_key": 1}
    assert keys.stats.wrong_key == 1


def test_without_a_key_an_encrypted_frame_has_no_measurements() -> None:
    keys = BindKeys({"00:00:00:00:00:01": SPEC_KEY})
    got = frame("41a47266c95f730011223378237214", address=SPEC_MAC, keys=keys)
    assert got == BTHomeFrame(True, False, None, ())
    assert keys.stats.no_key == 1


def test_a_keyed_device_sending_in_the_clear_is_refused() -> None:
    keys = BindKeys({SPEC_MAC: SPEC_KEY})
    assert frame("4002ca0903bf13", address=SPEC_MAC, keys=keys) == Malformed("bthome", "downgrade")
    assert keys.stats.downgrade == 1


def test_a_short_encrypted_payload_is_malformed() -> None:
    keys = BindKeys({SPEC_MAC: SPEC_KEY})
    assert frame("41a47266", address=SPEC_MAC, keys=keys) == Malformed("bthome", "encrypted_length")


def test_keys_never_show_in_their_repr() -> None:
    keys = BindKeys({SPEC_MAC: SPEC_KEY})
    assert SPEC_KEY.hex() not in repr(keys) and SPEC_MAC not in repr(keys)
    with pytest.raises(ValueError, match="16"):
        BindKeys({SPEC_MAC: b"short"})


# ------------------------------------------------------------------ keys file, config, pipeline

KEYS_CONFIG = MINIMAL + '\n[[devices]]\nid = "freezer-1"\nkind = "sensor"\naddress = "{MAC}"\n'


def _keys_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "bthome-keys"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_the_keys_file_is_parsed_and_its_problems_name_the_line_never_the_key() -> None:
    key = SPEC_KEY.hex()
    keys, problems = parse_bthome_keys(
        f"# freezers\n{SPEC_MAC.lower()} {key}  # aisle 3\n\n"
        f"{SPEC_MAC} {key}\nnot-a-mac {key}\n11:22:33:44:55:66 {key[:-2]}\nonly-one-word\n"
    )
    assert keys == {SPEC_MAC: SPEC_KEY}
    assert [p.split(":")[0] for p in problems] == ["line 4", "line 5", "line 6", "line 7"]
    assert not any(key[:16] in p for p in problems)


def test_bind_keys_are_never_inline_and_their_file_is_checked(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    inline = (
        KEYS_CONFIG.replace("{MAC}", SPEC_MAC) + f'\n[sensors]\nbthome_keys = "{SPEC_KEY.hex()}"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_checked(write_config(inline))
    text = str(info.value)
    assert "sensors.bthome_keys" in text and "bthome_keys_file" in text
    assert SPEC_KEY.hex() not in text

    path = _keys_file(tmp_path, f"{SPEC_MAC} {SPEC_KEY.hex()}\n", mode=0o644)
    named = KEYS_CONFIG.replace("{MAC}", SPEC_MAC) + f'\n[sensors]\nbthome_keys_file = "{path}"\n'
    with pytest.raises(ConfigError) as info:
        load_checked(write_config(named), secrets=True)
    assert "sensors.bthome_keys_file" in str(info.value) and "chmod 600" in str(info.value)
    path.chmod(0o600)
    cfg = load_checked(write_config(named), secrets=True)
    assert bthome_keys(cfg.sensors) == {SPEC_MAC: SPEC_KEY}
    out = run_cli("check-config", str(write_config(named)))
    assert SPEC_KEY.hex() not in out.stdout + out.stderr


def test_the_pipeline_publishes_encrypted_readings_and_counts_a_wrong_key(
    write_config: Callable[[str], Path],
) -> None:
    cfg = load_config(write_config(KEYS_CONFIG.replace("{MAC}", SPEC_MAC)))
    keys = BindKeys({SPEC_MAC: SPEC_KEY})
    p = Pipeline(cfg, bthome_keys=keys)
    clear = bytes.fromhex("02ca0903bf13")
    adverts = [
        Advert(
            SPEC_MAC,
            -60,
            t,
            1.7e9 + t,
            "rx-a",
            service_data={BTHOME_UUID: bytes([0x41]) + seal(SPEC_KEY, SPEC_MAC, 0x41, clear, c)},
        )
        for c, t in ((1000, 0.05), (1001, 1.05))
    ]
    adverts.append(replace(adverts[-1], receiver="rx-b", t=1.06, wall=1.7e9 + 1.06))
    wrong = Advert(
        SPEC_MAC,
        -60,
        2.05,
        1.7e9 + 2.05,
        "rx-a",
        service_data={BTHOME_UUID: bytes([0x41]) + seal(bytes(16), SPEC_MAC, 0x41, clear, 1002)},
    )
    events = run_ticks(p, [*adverts, wrong], 3.0, tick=0.1)
    readings = [e for e in events if e.type == "reading"]
    assert readings and readings[0].body.device == "freezer-1"
    assert readings[0].body.measurements["temperature"].value == 25.06
    assert keys.stats.decrypted == 2 and keys.stats.wrong_key == 1 and keys.stats.copies == 1
    assert p.decode_stats.malformed == {"bthome:wrong_key": 1}
