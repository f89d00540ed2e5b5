"""The floor plan in ``agent.toml``: every mistake names its key and says why; the store secret
is checked before the agent starts; the gateways of a store derive the same pseudonyms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.config.checks import load_checked
from edge_agent.errors import ConfigError
from edge_agent.models import Advert
from edge_agent.pipeline.identity import Identity, store_day_keys
from tests.support.cli import run_cli

BASE = """
[gateway]
id = "gw-a"
site = "s"
state_dir = "{state}"

[[zones]]
id = "west"
rect = [0.0, 0.0, 10.0, 10.0]

[[zones]]
id = "east"
rect = [10.0, 0.0, 20.0, 10.0]

[[receivers]]
id = "rx-0"
x = 2.0
y = 2.0

[[receivers]]
id = "rx-1"
x = 18.0
y = 2.0
"""


def _errors(write: Callable[[str], Path], text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_checked(write(text), secrets=True)
    return [issue.render("agent.toml") for issue in info.value.issues]


def test_a_floor_plan_is_valid_and_the_flat_config_still_works(
    write_config: Callable[[str], Path],
) -> None:
    cfg = load_config(write_config(BASE))
    assert cfg.floor_plan and cfg.zones[0].shape == [
        (0, 0),
        (10, 0),
        (10, 10),
        (0, 10),
    ]
    flat = load_config(
        write_config(
            BASE.replace("rect = [0.0, 0.0, 10.0, 10.0]", "radius_m = 5.0")
            .replace("rect = [10.0, 0.0, 20.0, 10.0]", "radius_m = 5.0")
            .replace("x = 2.0\ny = 2.0", 'zone = "west"')
            .replace("x = 18.0\ny = 2.0", 'zone = "east"')
        )
    )
    assert not flat.floor_plan


FLOOR_CASES = [
    (  # a receiver without a position on a plan
        BASE.replace("x = 18.0\ny = 2.0\n", "y = 2.0\n"),
        "receivers[1].x: required: other receivers have positions (a floor plan), so every "
        "receiver needs one",
    ),
    (  # a zone without a shape on a plan
        BASE.replace("rect = [10.0, 0.0, 20.0, 10.0]\n", ""),
        "zones[1].rect: required on a floor plan: give rect or polygon",
    ),
    (  # a polygon that crosses itself
        BASE.replace(
            "rect = [10.0, 0.0, 20.0, 10.0]", "polygon = [[10, 0], [20, 10], [20, 0], [10, 6]]"
        ),
        "zones[1].polygon = [[10, 0], [20, 10], [20, 0], [10, 6]]: edge 0–1 "
        "crosses edge 2–3: it is not simple",
    ),
    (  # zones that overlap
        BASE.replace("rect = [10.0, 0.0, 20.0, 10.0]", "rect = [8.0, 0.0, 20.0, 10.0]"),
        "zones[1].rect: overlaps zone 'west' by about 20.0 m²; set overlap = true on both if a "
        "device may be in both",
    ),
    (  # a receiver far outside the plan
        BASE.replace("x = 18.0\ny = 2.0", "x = 18.0\ny = 40.0"),
        "receivers[1].x = 18.0: (18, 40) is outside the plan: the zones' extent is [0, 0, 20, "
        "10] (receivers may stand up to 2 m outside it)",
    ),
    (  # a malformed rectangle
        BASE.replace("rect = [10.0, 0.0, 20.0, 10.0]", "rect = [20.0, 0.0, 10.0, 10.0]"),
        "zones[1].rect = [20.0, 0.0, 10.0, 10.0]: must be [x0, y0, x1, y1] with "
        "x0 < x1 and y0 < y1",
    ),
    (  # a shape without a plan
        BASE.replace("x = 2.0\ny = 2.0", 'zone = "west"').replace(
            "x = 18.0\ny = 2.0", 'zone = "east"'
        ),
        "zones[0].rect: a zone shape needs a floor plan: give the receivers their x and y",
    ),
    (  # the same adapter twice on one gateway
        BASE.replace('id = "rx-1"', 'id = "rx-0"'),
        "receivers[1].id = 'rx-0': duplicate id in receivers (same gateway)",
    ),
    (  # hysteresis the wrong way round
        BASE + "\n[fusion]\nenter_probability = 0.3\nexit_probability = 0.5\n",
        "exit_probability must be below enter_probability (hysteresis)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), FLOOR_CASES)
def test_floor_plan_mistakes_name_the_key(
    write_config: Callable[[str], Path], text: str, expected: str
) -> None:
    errors = _errors(write_config, text)
    assert any(expected in e for e in errors), errors


def test_overlap_is_allowed_when_both_zones_say_so_and_gateways_share_adapter_names(
    write_config: Callable[[str], Path],
) -> None:
    text = BASE.replace("rect = [10.0, 0.0, 20.0, 10.0]", "rect = [8.0, 0.0, 20.0, 10.0]")
    text = text.replace('id = "east"', 'id = "east"\noverlap = true')
    text = text.replace('id = "west"', 'id = "west"\noverlap = true')
    # every gateway has an hci0: another gateway's receivers are named with their gateway
    text += '\n[[receivers]]\nid = "rx-0"\ngateway = "gw-b"\nx = 10.0\ny = 9.0\n'
    cfg = load_config(write_config(text))
    assert [r.key(cfg.gateway.id) for r in cfg.receivers] == ["rx-0", "rx-1", "gw-b/rx-0"]


def test_the_store_secret_is_checked_before_the_agent_starts(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * 32)
    secret.chmod(0o644)
    text = BASE + f'\n[privacy]\nstore_secret_file = "{secret}"\n'
    errors = _errors(write_config, text)
    assert any("privacy.store_secret_file" in e and "chmod 600" in e for e in errors), errors
    assert not any("x" * 32 in e for e in errors)  # never the secret itself
    secret.chmod(0o600)
    secret.write_bytes(b"short")
    assert any("needs at least 16" in e for e in _errors(write_config, text))
    secret.write_bytes(b"y" * 32)
    assert load_checked(write_config(text), secrets=True).privacy.store_secret_file == secret
    secret.unlink()
    assert any("cannot be read" in e for e in _errors(write_config, text))
    out = run_cli("check-config", str(write_config(text)), expect=2)
    assert "store_secret_file" in out.stderr


def test_a_store_secret_gives_the_same_pseudonyms_on_every_gateway_and_day_only(
    write_config: Callable[[str], Path],
) -> None:
    cfg = load_config(write_config(BASE))
    day = 1_800_000_000.0  # some UTC day; noon-ish whatever the date is, it is pinned
    advert = Advert("D0:00:00:00:00:01", -60, 0.0, day, "rx-0", "random")

    def pseudonym(secret: bytes, wall: float) -> str:
        ident = Identity(cfg, day_keys=store_day_keys(secret))
        ref = ident.resolve(Advert(advert.address, -60, 0.0, wall, "rx-0", "random"), [])
        assert ref is not None
        return ref.id

    same = b"the store's secret, 32 bytes ok"
    assert pseudonym(same, day) == pseudonym(same, day + 60)  # two gateways, one day
    assert pseudonym(same, day) != pseudonym(b"another store's secret, 32 b", day)
    assert pseudonym(same, day) != pseudonym(same, day + 86_400)  # the next day
