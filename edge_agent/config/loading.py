"""Loading ``agent.toml``: TOML → validated ``AgentConfig``, with every problem reported at once,
each naming the key path, the bad value, why, and its line.

``load_config(path)`` reads the file (and the calibration file it includes) and validates it;
``parse_config(text)`` validates text. Neither reads the files or variables the configuration
names (password files, credentials, the consent list): ``edge_agent.config.checks`` does.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge_agent import geometry, inputs
from edge_agent.config.floor import CalibrationConfig
from edge_agent.config.moments import TRIGGERS, reference_issues
from edge_agent.config.sections import AgentConfig
from edge_agent.errors import ConfigError, ConfigIssue
from edge_agent.ids import PATTERN_MESSAGES, redact_userinfo
from edge_agent.inputs import InputError

CALIBRATION_MAX_BYTES = 16 << 20
"""A calibration file at most: its radio map holds a value per receiver and cell."""


def read_text(path: Path) -> str:
    """A configuration file's text (bounded, UTF-8); ``ConfigError`` when it cannot be read."""
    try:
        return inputs.read_text(path)
    except InputError as err:
        raise ConfigError(str(path), [ConfigIssue("", err.reason)]) from None


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """Read, validate and cross-check ``path``; raise ``ConfigError`` listing every problem.

    ``overrides`` maps dotted keys to values applied on top of the file (used by ``demo``).
    Whether the files and variables it names exist is ``edge_agent.config.checks``' step.
    """
    path = Path(path)
    return parse_config(
        read_text(path), source=str(path), base_dir=path.parent, overrides=overrides
    )


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AgentConfig:
    """Validate TOML text; see ``load_config``."""
    checked = validate(text, source=source, base_dir=base_dir, overrides=overrides)
    if checked.issues:
        raise ConfigError(source, checked.issues)
    return checked.config


@dataclass(slots=True, frozen=True)
class Validated:
    """A configuration that passed validation, and what its cross-checks found."""

    config: AgentConfig
    """The configuration."""
    issues: list[ConfigIssue]
    """Problems between keys (a receiver's zone that does not exist …); empty when none."""
    lines: Mapping[tuple[str | int, ...], int]
    """Key path → the line it stands on, for issues found later."""
    warnings: list[ConfigIssue] = field(default_factory=list)
    """What works but is likely not meant (an adapter whose adverts get no zone …)."""


def validate(
    text: str,
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Validated:
    """Parse and validate TOML text (``ConfigError`` when it is not TOML or a value is wrong),
    then cross-check it, returning the cross-checks' issues rather than raising them."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+)", str(err))
        issue = ConfigIssue("", f"not valid TOML: {err}", line=int(m.group(1)) if m else None)
        raise ConfigError(source, [issue]) from err
    for dotted, value in (overrides or {}).items():
        try:
            _set_dotted(data, dotted, value)
        except ValueError as err:
            raise ConfigError(source, [ConfigIssue(dotted, str(err), has_value=False)]) from None
    lines = _locate_keys(text)
    _include_calibration(data, source, base_dir, lines)
    try:
        cfg = AgentConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as err:
        issues = [_issue_from_error(e, lines) for e in err.errors(include_url=False)]
        raise ConfigError(source, issues) from err
    return Validated(cfg, list(_cross_checks(cfg, lines)), lines, list(_cross_warnings(cfg, lines)))


def read_calibration(path: Path) -> CalibrationConfig:
    """A calibration TOML as ``edge-agent calibrate`` writes it (``ConfigError`` naming the
    file, line and key when it is wrong); a radio map makes it larger than a configuration."""
    try:
        text = inputs.read_text(path, CALIBRATION_MAX_BYTES)
    except InputError as err:
        raise ConfigError(str(path), [ConfigIssue("", err.reason)]) from None
    try:
        parsed = CalibrationConfig.model_validate(tomllib.loads(text).get("calibration", {}))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), [ConfigIssue("", f"not valid TOML: {err}")]) from err
    except ValidationError as err:
        lines = _locate_keys(text)
        issues = [
            _issue_from_error({**e, "loc": ("calibration", *e["loc"])}, lines)
            for e in err.errors(include_url=False)
        ]
        raise ConfigError(str(path), issues) from err
    if parsed.file is not None:
        raise ConfigError(str(path), [ConfigIssue("calibration.file", "includes cannot nest")])
    return parsed


def _include_calibration(
    data: dict[str, Any],
    source: str,
    base_dir: Path | None,
    lines: Mapping[tuple[str | int, ...], int],
) -> None:
    """Put the receivers of ``calibration.file`` before the inline ones (validated on their own,
    so that errors point into that file)."""
    section = data.get("calibration")
    if not isinstance(section, dict) or not isinstance(section.get("file"), str):
        return
    path = Path(section["file"])
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        issue = issue_at(("calibration", "file"), section["file"], f"{path}: file not found", lines)
        raise ConfigError(source, [issue])
    parsed = read_calibration(path)
    inline = section.get("receivers", [])
    section["receivers"] = [r.model_dump() for r in parsed.receivers] + list(inline)
    if parsed.radio_map is not None and "radio_map" not in section:
        section["radio_map"] = parsed.radio_map.model_dump()


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key; in an array of tables (``receivers``, ``zones`` …) a part names the
    entry by its ``id`` (``receivers.r1.rssi_offset_db``). ``ValueError`` when it cannot."""
    node: Any = data
    parts = dotted.split(".")
    for i, key in enumerate(parts, 1):
        last = i == len(parts)
        if isinstance(node, list):
            found = [e for e in node if isinstance(e, dict) and e.get("id") == key]
            if not found:
                raise ValueError(f"no entry with id {key!r}")
            if last:
                raise ValueError("names a whole entry: set its keys one by one")
            node = found[-1]
        elif not isinstance(node, dict):
            raise ValueError(f"{key!r} is below a value, not a table")
        elif last:
            node[key] = value
        else:
            node = node.setdefault(key, {})


_HEADER = re.compile(r"^\[\[?\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r'^((?:"[^"]*"|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|[A-Za-z0-9_-]+))*)\s*=')


def _split_key(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip('"') for part in key.split("."))


def _locate_keys(text: str) -> dict[tuple[str | int, ...], int]:
    """Map key paths (as pydantic reports them) to the line they stand on."""
    found: dict[tuple[str | int, ...], int] = {}
    counters: dict[tuple[str, ...], int] = {}
    table: tuple[str | int, ...] = ()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header:
            keys = _split_key(header.group(1))
            if line.startswith("[["):
                index = counters.get(keys, -1) + 1
                counters[keys] = index
                table = (*keys, index)
            else:
                table = keys
            found.setdefault(table, lineno)
            continue
        key = _KEY.match(line)
        if key:
            found.setdefault((*table, *_split_key(key.group(1))), lineno)
    return found


def _line_for(loc: Iterable[str | int], lines: Mapping[tuple[str | int, ...], int]) -> int | None:
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _num(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _message(err: Mapping[str, Any], known_keys: Iterable[str]) -> str:
    kind = err["type"]
    ctx = {k: _num(v) for k, v in (err.get("ctx") or {}).items()}
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        name = str(err["loc"][-1])
        close = difflib.get_close_matches(name, list(known_keys), n=1)
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    if kind == "literal_error" or kind == "enum":
        return f"must be one of {ctx['expected']}"
    if kind == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(str(ctx["pattern"]), f"must match {ctx['pattern']}")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind == "string_type":
        return "must be a string"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "list_type":
        return "must be an array"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a table"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """Names of the fields valid in the table that holds ``loc`` (for 'did you mean')."""
    model: Any = AgentConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return []
        ann = info.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return []
    return list(model.model_fields)


def _issue_from_error(
    err: Mapping[str, Any], lines: Mapping[tuple[str | int, ...], int]
) -> ConfigIssue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    if len(loc) > 2 and loc[0] == "moments" and loc[2] in TRIGGERS:  # the union's tag
        loc = loc[:2] + loc[3:]
    missing = err["type"] == "missing"
    value = None if missing else err.get("input")
    if loc[:2] == ("mqtt", "urls"):  # a URL may carry a password: never echo it
        value = _redact_urls(value)
    return ConfigIssue(
        path=_dotted(loc),
        message=_redact_urls(_message(err, _fields_at(loc))),
        value=value,
        line=_line_for(loc, lines),
        has_value=not missing,
    )


def _redact_urls(value: Any) -> Any:
    """URLs with ``user:password@`` shown as ``***@``."""
    if isinstance(value, str):
        return redact_userinfo(value)
    if isinstance(value, list):
        return [_redact_urls(v) for v in value]
    return value


def _duplicates(ids: list[str]) -> list[int]:
    seen: set[str] = set()
    dup: list[int] = []
    for i, value in enumerate(ids):
        if value in seen:
            dup.append(i)
        seen.add(value)
    return dup


def issue_at(
    loc: tuple[str | int, ...],
    value: object,
    message: str,
    lines: Mapping[tuple[str | int, ...], int],
) -> ConfigIssue:
    """An issue about the key at ``loc`` (its line from ``lines``; ``value`` None: missing)."""
    return ConfigIssue(_dotted(loc), message, value, _line_for(loc, lines), value is not None)


def _cross_checks(
    cfg: AgentConfig, lines: Mapping[tuple[str | int, ...], int]
) -> Iterable[ConfigIssue]:
    """Rules that span keys; each issue still names one key. No file or variable is read."""

    def issue(loc: tuple[str | int, ...], value: object, message: str) -> ConfigIssue:
        return issue_at(loc, value, message, lines)

    for name, items in (("zones", cfg.zones), ("devices", cfg.devices)):
        for i in _duplicates([item.id for item in items]):
            yield issue((name, i, "id"), items[i].id, f"duplicate id in {name}")
    # receivers: one id per gateway (every gateway of a store has its own hci0)
    for i in _duplicates([r.key(cfg.gateway.id) for r in cfg.receivers]):
        yield issue(
            ("receivers", i, "id"), cfg.receivers[i].id, "duplicate id in receivers (same gateway)"
        )
    zone_ids = {z.id for z in cfg.zones}
    for i, rx in enumerate(cfg.receivers):
        if rx.zone is None and not cfg.floor_plan:
            yield issue(
                ("receivers", i, "zone"), None, "required without a floor plan (receiver x, y)"
            )
        elif rx.zone is not None and rx.zone not in zone_ids:
            known = ", ".join(sorted(zone_ids)) or "none defined"
            yield issue(("receivers", i, "zone"), rx.zone, f"no such zone (zones: {known})")
    yield from _floor_checks(cfg, issue)
    for loc, value, message in reference_issues(
        cfg.moments,
        {z.id for z in cfg.zones},
        {d.id for d in cfg.devices},
        [(f.id_format, f.kind.value) for f in cfg.fleets],
    ):
        yield issue(loc, value, message)
    for i, dev in enumerate(cfg.devices):
        if (dev.address is None) == (dev.beacon is None):
            yield issue(("devices", i), dev.id, "needs exactly one of 'address' or 'beacon'")
        if dev.zone is not None and dev.zone not in zone_ids:
            known = ", ".join(sorted(zone_ids)) or "none defined"
            yield issue(("devices", i, "zone"), dev.zone, f"no such zone (zones: {known})")
        if dev.zone is not None and dev.presence:
            yield issue(("devices", i, "presence"), True, "a device fixed in a zone has none")
    p = cfg.proximity
    if not p.immediate_m < p.near_m < p.far_m:
        yield issue(
            ("proximity", "near_m"), p.near_m, "bands must grow: immediate_m < near_m < far_m"
        )
    for i, zone in enumerate(cfg.zones):
        if zone.radius_m > p.far_m and not cfg.floor_plan:
            yield issue(
                ("zones", i, "radius_m"),
                zone.radius_m,
                f"is beyond proximity.far_m = {p.far_m:g}: a device inside the zone would be "
                "'gone'; lower the radius or raise far_m",
            )
    src = cfg.source
    if src.kind == "sim" and src.scenario is None:
        yield issue(("source", "scenario"), None, "required when source.kind = 'sim'")
    if src.kind == "replay" and src.path is None:
        yield issue(("source", "path"), None, "required when source.kind = 'replay'")
    m = cfg.mqtt
    secrets = [k for k in ("password_file", "password_env", "password_credential") if getattr(m, k)]
    if len(secrets) > 1:
        yield issue(("mqtt", secrets[1]), None, f"set only one of {', '.join(secrets)}")
    if secrets and not m.username:
        yield issue(("mqtt", "username"), None, "required when a password is configured")
    tls = m.tls
    if tls.key_file is not None and tls.key_credential is not None:
        yield issue(("mqtt", "tls", "key_credential"), None, "set key_file or key_credential")
    has_key = tls.key_file is not None or tls.key_credential is not None
    if (tls.cert_file is None) != (not has_key):
        yield issue(
            ("mqtt", "tls", "cert_file" if tls.cert_file is None else "key_file"),
            None,
            "mutual TLS needs both cert_file and key_file (or key_credential)",
        )
    if not m.uses_tls and (tls.ca_file or tls.cert_file or has_key):
        yield issue(("mqtt", "urls"), None, "mqtt.tls is set but no URL is mqtts://")


def _floor_checks(
    cfg: AgentConfig, issue: Callable[[tuple[str | int, ...], object, str], ConfigIssue]
) -> Iterable[ConfigIssue]:
    """The floor plan: every receiver placed once any is, every zone a shape, receivers on
    the plan, zones that do not overlap unless both allow it."""
    rmap = cfg.calibration.radio_map
    if rmap is not None:
        names = {r.key(cfg.gateway.id) for r in cfg.receivers}
        for name in rmap.correction_db:
            if name not in names:
                yield issue(
                    ("calibration", "radio_map", "correction_db", name),
                    None,
                    "not a receiver of the plan (another gateway's is named gateway/id)",
                )
        if not cfg.floor_plan:
            yield issue(
                ("calibration", "radio_map"),
                None,
                "a radio map needs a floor plan: give the receivers their x and y",
            )
    if not cfg.floor_plan:
        for i, zone in enumerate(cfg.zones):
            if zone.shape is not None:
                key = "rect" if zone.rect is not None else "polygon"
                yield issue(
                    ("zones", i, key),
                    None,
                    "a zone shape needs a floor plan: give the receivers their x and y",
                )
        return
    for i, rx in enumerate(cfg.receivers):
        for axis in ("x", "y"):
            if getattr(rx, axis) is None:
                yield issue(
                    ("receivers", i, axis),
                    None,
                    "required: other receivers have positions (a floor plan), so every "
                    "receiver needs one",
                )
    shapes = [(i, z, z.shape) for i, z in enumerate(cfg.zones)]
    for i, _zone, shape in shapes:
        if shape is None:
            yield issue(
                ("zones", i, "rect"), None, "required on a floor plan: give rect or polygon"
            )
    placed = [(i, z, s) for i, z, s in shapes if s is not None]
    floor = cfg.fusion.floor
    if floor is None and placed:
        floor = geometry.bounds([c for _, _, s in placed for c in s])
    if floor is not None:
        x0, y0, x1, y1 = floor
        margin = PLAN_MARGIN_M
        what = "fusion.floor" if cfg.fusion.floor is not None else "the zones' extent"
        for i, rx in enumerate(cfg.receivers):
            if rx.x is None or rx.y is None:
                continue
            if not (x0 - margin <= rx.x <= x1 + margin and y0 - margin <= rx.y <= y1 + margin):
                yield issue(
                    ("receivers", i, "x"),
                    rx.x,
                    f"({rx.x:g}, {rx.y:g}) is outside the plan: {what} is "
                    f"[{x0:g}, {y0:g}, {x1:g}, {y1:g}] (receivers may stand up to "
                    f"{margin:g} m outside it)",
                )
        if cfg.fusion.floor is not None:
            for i, zone, shape in placed:
                bx0, by0, bx1, by1 = geometry.bounds(shape)
                if bx0 < x0 or by0 < y0 or bx1 > x1 or by1 > y1:
                    key = "rect" if zone.rect is not None else "polygon"
                    yield issue(("zones", i, key), None, "reaches outside fusion.floor")
    for a in range(len(placed)):
        for b in range(a + 1, len(placed)):
            (i, za, sa), (j, zb, sb) = placed[a], placed[b]
            if za.overlap and zb.overlap:
                continue
            shared = geometry.overlap_area(sa, sb)
            if shared > 0.05:
                key = "rect" if zb.rect is not None else "polygon"
                yield issue(
                    ("zones", j, key),
                    None,
                    f"overlaps zone {za.id!r} by about {shared:.1f} m²; set overlap = true "
                    "on both if a device may be in both",
                )


PLAN_MARGIN_M = 2.0
"""How far outside the floor a receiver may stand (on a wall, above a door)."""


def radio_receivers(cfg: AgentConfig) -> list[str]:
    """The receiver ids this gateway's radio reports adverts under (``bleak`` only): every
    adapter with the ``all`` policy, the first with ``failover``."""
    src = cfg.source
    if src.kind != "bleak":
        return []
    return list(src.adapters) if src.adapter_policy == "all" else [src.adapters[0]]


def _cross_warnings(
    cfg: AgentConfig, lines: Mapping[tuple[str | int, ...], int]
) -> Iterable[ConfigIssue]:
    """What works but is likely not meant: adapters without a zone, when zones are defined (a
    gateway of sensors only has none)."""
    zoned = {r.id for r in cfg.receivers}
    names = radio_receivers(cfg)
    unzoned = [n for n in names if n not in zoned]
    if not cfg.zones or not unzoned:
        return
    if len(unzoned) == len(names):
        message = (
            f"no [[receivers]] entry is named {' or '.join(map(repr, names))}: nothing this "
            "gateway hears gets a zone, so it publishes no presence and every zone looks "
            f'empty; add [[receivers]] id = "{names[0]}" with the zone it covers'
        )
    else:
        message = f"{', '.join(unzoned)} has no [[receivers]] entry: its adverts get no zone"
    yield issue_at(("source", "adapters"), cfg.source.adapters, message, lines)
