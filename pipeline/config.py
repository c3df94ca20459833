"""Configuration: packaged defaults (default_config.yaml) merged with the operator's file."""

from __future__ import annotations

import copy
import ipaddress
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError


def defaults() -> dict[str, Any]:
    text = resources.files("pipeline").joinpath("default_config.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


# settings of earlier versions that no longer do anything: accepted (an operator's file keeps
# working after an upgrade) and ignored
RETIRED = {"contact_index.recent_rows_warning", "contact_index.auto_compact"}
OPEN = ("aliases", "years", "severity", "null_rates", "value_sets", "rule_failure_pct", "conf")


def _merge(base: dict[str, Any], override: dict[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if f"{where}{key}" in RETIRED:
            continue
        if key not in base:
            raise ConfigError(f"unknown setting '{where}{key}'")
        if isinstance(base[key], dict) and not isinstance(value, dict):  # `web:` with nothing under it too
            raise ConfigError(f"setting '{where}{key}' must be a section of settings (it is {value!r}); "
                              "leave it out to keep its defaults")
        if isinstance(base[key], dict) and isinstance(value, dict) and key in OPEN:
            out[key] = {**base[key], **value}  # keys of the operator's own choosing (columns, rules, years)
        elif isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def trusted_proxies(value: Any) -> list[str]:
    """web.trusted_proxies: addresses and networks as uvicorn reads them (an entry it could not
    read would silently trust nothing, or "*" everyone)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("web.trusted_proxies must be a list of addresses or networks, e.g. [127.0.0.1]")
    for v in value:
        try:
            ipaddress.ip_network(v) if "/" in v else ipaddress.ip_address(v)
        except ValueError:
            raise ConfigError(f"web.trusted_proxies: {v!r} is not an IP address or network (e.g. 10.0.8.0/24)") from None
    return value


def load(path: str | Path | None = None) -> dict[str, Any]:
    """Return the effective configuration; `path` is merged over the defaults."""
    cfg = defaults()
    if path is None:
        return cfg
    p = Path(path)
    try:
        user = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{p}: unreadable config file ({first})") from None
    if not isinstance(user, dict):
        raise ConfigError(f"{p}: config file must be a mapping of settings")
    try:
        merged = _merge(cfg, user, "")
        _check(merged)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    return merged


GUARDABLE = ("policy_no", "branch", "channel", "agent_code", "product_code")


def _check(cfg: dict[str, Any]) -> None:
    """Settings whose wrong value would only show in the middle of a night."""
    guard = cfg["scope"]["identifier_guard"]
    if not isinstance(guard, list) or not set(guard) <= set(GUARDABLE):
        raise ConfigError(f"scope.identifier_guard must be a list of columns among {', '.join(GUARDABLE)} "
                          f"(it is {guard!r})")
    trusted_proxies(cfg["web"]["trusted_proxies"])
