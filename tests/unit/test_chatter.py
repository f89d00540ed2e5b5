"""Chatty advertisers are dropped before any work, by rule, and counted; iBeacons (Apple's
company id too) and the store's own devices never are."""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.config.sections import DropRule
from edge_agent.errors import ConfigError
from edge_agent.models import Advert
from edge_agent.pipeline import chatter
from edge_agent.pipeline.chatter import Chatter
from edge_agent.pipeline.tick import Pipeline
from tests.support.configs import MINIMAL
from tests.support.ticks import run_ticks

IBEACON = bytes.fromhex("0215e2c56db5dffb48d2b060d0f5a71096e000010002c5")
NEARBY = bytes.fromhex("10050118ab1234")  # Apple Continuity: Nearby Info


def _adv(**kw: object) -> Advert:
    return Advert("5A:11:22:33:44:55", -60, 0.01, 1.7e9, "rx-a", "random", **kw)  # type: ignore[arg-type]


CASES = {
    "apple_continuity": _adv(manufacturer_data={0x004C: NEARBY}),
    "microsoft_cdp": _adv(manufacturer_data={0x0006: bytes.fromhex("0109202234")}),
    "exposure_notification": _adv(service_data={chatter._uuid16(0xFD6F): bytes(20)}),
    "tile": _adv(service_uuids=(chatter._uuid16(0xFEED),)),
    "fast_pair": _adv(service_data={chatter._uuid16(0xFE2C): bytes(3)}),
}


def test_the_config_names_every_rule_and_no_other() -> None:
    assert set(typing.get_args(DropRule)) == set(chatter.RULES)


@pytest.mark.parametrize("rule", chatter.RULES)
def test_each_rule_drops_its_advertiser_only(rule: str) -> None:
    only = Chatter([rule])
    assert only.match(CASES[rule]) == rule
    assert all(only.match(adv) is None for name, adv in CASES.items() if name != rule)
    assert Chatter(chatter.RULES).match(_adv(manufacturer_data={0x004C: IBEACON})) is None


def test_dropped_adverts_are_counted_and_do_no_work(write_config: Callable[[str], Path]) -> None:
    cfg = load_config(write_config(MINIMAL))  # the default rules: not Apple's phones
    p = Pipeline(cfg)
    adverts = [CASES[r] for r in chatter.DEFAULT] + [CASES["apple_continuity"]]
    run_ticks(p, adverts, 0.5, tick=0.1)
    assert p.decode_stats.dropped == dict.fromkeys(chatter.DEFAULT, 1)
    assert p.decode_stats.adverts == 1 and p.devices_tracked == 1  # the phone, counted


def test_an_unknown_rule_is_named(write_config: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(MINIMAL + '\n[pipeline]\ndrop = ["tile", "airtags"]\n'))
    assert "pipeline.drop[1]" in str(info.value) and "fast_pair" in str(info.value)
