"""GB/T 2260 administrative division codes, read from python-stdnum's `cn/loc.dat` as data.

python-stdnum keeps every code ever assigned with the years it was in use (`[1983-1997]`);
for identity numbers a code stays valid for life (SPEC 2.3: a number keeps the code of the
county where it was issued), so the year ranges are kept as information only.

>>> codes = county_codes()
>>> codes["110101"].county, codes["110101"].retired
('东城区', False)
>>> codes["110103"].retired  # 崇文区, merged into 东城区 in 2010
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

_PROP = re.compile(r'(\w+)="([^"]*)"')
_RANGE = re.compile(r"^\[(\d*)-(\d*)\]")


@dataclass(frozen=True)
class Region:
    code: str
    province: str
    prefecture: str
    county: str
    retired: bool


@lru_cache(maxsize=1)
def county_codes() -> dict[str, Region]:
    """Every six-digit county-level code in python-stdnum's data (prefecture codes `xxxx00` excluded)."""
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    out: dict[str, Region] = {}
    province = prefix = ""
    prefectures: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, rest = line.strip().partition(" ")
        props = dict(_PROP.findall(rest))
        if not line.startswith(" "):
            prefix, province = key, props.get("province", "")
            continue
        code = prefix + key
        name = props.get("county", "")
        first = name.split(",")[0]
        retired = all(_retired(part) for part in name.split(","))
        clean = _RANGE.sub("", first)
        if code.endswith("00"):
            prefectures[code[:4]] = clean
            continue
        out[code] = Region(code, province, prefectures.get(code[:4], ""), clean, retired)
    return out


def _retired(part: str) -> bool:
    m = _RANGE.match(part)
    return bool(m and m.group(2))


@lru_cache(maxsize=1)
def known_codes() -> frozenset[str]:
    """Every address code an identity number may carry: all codes python-stdnum knows (provinces,
    prefectures, counties, current and retired, whatever the holder's birth year) plus the
    documented allow-list (`checks/data/region_allowlist.csv`: residence permits, codes missing
    from python-stdnum, each with its source).

    >>> {"110103", "500101", "810000", "632825"} <= known_codes(), "999999" in known_codes()
    (True, False)
    """
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    codes: set[str] = set()
    prefix = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key = line.strip().split(" ", 1)[0]
        if not line.startswith(" "):
            prefix = key
            codes.add(prefix + "0000")
        else:
            codes.add(prefix + key)
    allow = resources.files("checks").joinpath("data/region_allowlist.csv").read_text(encoding="utf-8")
    for line in allow.splitlines():
        code = line.split(",", 1)[0].strip()
        if code.isdigit() and len(code) == 6:
            codes.add(code)
    return frozenset(codes)
