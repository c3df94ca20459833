"""Chinese addresses compared as one address however they are written (ADDRESS_IS_AGENT).

Two texts are the same address when, after `canonical`:

- their last part (the street, community, building and room: the *detail*) is the same text;
- what comes before it is region names only (province, prefecture, county: GB/T 2260's names,
  the data python-stdnum maintains, checks.regions), written in full or, for a province or a
  prefecture, without its suffix (广东 for 广东省, 广州 for 广州市), or left out;
- where both name a level, they name the same one.

`canonical` takes out what does not tell two addresses apart: spaces and punctuation, case,
full-width forms (NFKC, as SPEC 2.5 normalises every text), the traditional forms of a few
characters (號, 樓, 區, 縣), 幢 for 栋, and Chinese numerals before a unit (三号楼, 十二栋) as
digits.

Known limits, said where the rule is documented (docs/rules.md):
- a detail shorter than MIN_DETAIL characters (a bare 1号) is never compared: too many
  addresses end that way;
- an address that names only its region, or only its detail with another road's name in
  front, is a different text and does not match;
- a county named without its suffix (天河 for 天河区) is not taken as a region: it is too often
  part of a road's name (天河路);
- the same building written with another name (a community's old and new names) does not match.

>>> canonical(pd.Series(["广东省 广州市，天河区体育西路１０３號 维多利广场B座", "三号楼二单元十二室"])).tolist()
['广东省广州市天河区体育西路103号维多利广场B座', '3号楼2单元12室']
>>> split(["广州市天河区体育西路103号", "广东广州天河区体育西路103号", "体育西路103号"])[1]
('广东省', '广州市', '天河区', '体育西路103号')
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from checks.regions import county_codes

MIN_DETAIL = 4  # characters of detail an address must have to be compared

_VARIANTS = str.maketrans({"號": "号", "樓": "楼", "區": "区", "縣": "县", "幢": "栋", "〇": "零"})
_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUMERAL_UNIT = re.compile(r"([零一二两三四五六七八九十百]+)(?=[号栋楼单元室层座期组巷弄排])")
_PROVINCE_SUFFIX = re.compile(r"(省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)$")
_PREFECTURE_SUFFIX = re.compile(r"(市|地区|自治州|盟)$")
# GB/T 2260's words for "no prefecture here" (a county the province governs directly, a city's
# districts): no place, though generated addresses and some systems write them; skipped where a
# region name may stand
_PLACEHOLDER = re.compile(r"(省|自治区)直辖(县级)?行政(单位|区划)|市辖区")


def _numeral(text: str) -> str:
    """一 -> 1, 十二 -> 12, 二十 -> 20, 一百零五 -> 105 (the house numbers Chinese numerals write)."""
    total, current = 0, 0
    for ch in text:
        if ch == "百":
            total += (current or 1) * 100
            current = 0
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = current * 10 + _DIGITS[ch] if current else _DIGITS[ch]
    return str(total + current)


def canonical(addresses: pd.Series) -> pd.Series:
    """Each address as the comparison reads it (see the module's docstring); missing stays missing."""
    codes, distinct = pd.factorize(addresses.astype("str"))
    out = pd.Series(distinct, dtype="str")
    out = out.str.normalize("NFKC").str.translate(_VARIANTS).str.upper().str.replace(r"[\W_]+", "", regex=True)
    out = out.str.replace(_NUMERAL_UNIT, lambda m: _numeral(m.group(1)), regex=True)
    texts = np.array([*out.to_numpy(dtype=object), None], dtype=object)  # code -1 (missing) takes the last: None
    return pd.Series(texts[codes], index=addresses.index, dtype="str")


@lru_cache(maxsize=1)
def _names() -> tuple[dict[str, str], dict[str, tuple[str, str]], dict[str, list[tuple[str, str, str]]]]:
    """province name (full or short) -> full; prefecture name -> (province, prefecture);
    county name -> every (province, prefecture, county) of that name (朝阳区 is in Beijing and
    in Changchun), from GB/T 2260 (checks.regions)."""
    provinces: dict[str, str] = {}
    prefectures: dict[str, tuple[str, str]] = {}
    counties: dict[str, list[tuple[str, str, str]]] = {}
    for r in county_codes().values():
        provinces[r.province] = r.province
        provinces[_PROVINCE_SUFFIX.sub("", r.province) or r.province] = r.province
        prefecture = "" if r.prefecture == "县" or _PLACEHOLDER.fullmatch(r.prefecture) else r.prefecture
        if prefecture:
            prefectures.setdefault(prefecture, (r.province, prefecture))
            prefectures.setdefault(_PREFECTURE_SUFFIX.sub("", prefecture) or prefecture, (r.province, prefecture))
        if r.county and not _PLACEHOLDER.fullmatch(r.county) and (r.province, prefecture, r.county) not in counties.get(
                r.county, []):
            counties.setdefault(r.county, []).append((r.province, prefecture, r.county))
    return provinces, prefectures, counties


def _leading(text: str, names: dict) -> str:
    """The longest name of `names` that `text` starts with ("" when none)."""
    for n in range(min(len(text), 12), 1, -1):
        if text[:n] in names:
            return text[:n]
    return ""


def _skip_placeholder(text: str) -> str:
    match = _PLACEHOLDER.match(text)
    return text[match.end():] if match else text


@lru_cache(maxsize=100_000)
def _split_one(text: str) -> tuple[str, str, str, str]:
    provinces, prefectures, counties = _names()
    province = prefecture = county = ""
    rest = text
    if word := _leading(rest, provinces):
        province, rest = provinces[word], rest[len(word):]
        if province.endswith("市"):  # 北京市, 上海市 ...: the province is the city
            prefecture = province
    rest = _skip_placeholder(rest)
    word = _leading(rest, prefectures)
    # a prefecture of another province, or a county's name that starts the same way (北京市朝阳区:
    # 朝阳区, not 朝阳 for 辽宁省朝阳市), is not this address's prefecture
    if word and (not province or prefectures[word][0] == province) and len(_leading(rest, counties)) <= len(word):
        p, prefecture = prefectures[word]
        province, rest = province or p, rest[len(word):]
    rest = _skip_placeholder(rest)
    if word := _leading(rest, counties):
        places = [c for c in counties[word] if (not province or c[0] == province)
                  and (not prefecture or not c[1] or c[1] == prefecture)]
        if not places and prefecture:  # a prefecture's retired province (重庆市 was 四川省's until 1997)
            places = [c for c in counties[word] if c[1] == prefecture]
        if places:  # a county of the province and prefecture named (when named)
            county, rest = word, rest[len(word):]
            if len({c[:2] for c in places}) == 1:  # one place of that name: its province and prefecture
                province, prefecture = places[0][0], prefecture or places[0][1]
    return province, prefecture, county, rest


def split(canonicals) -> list[tuple[str, str, str, str]]:
    """(province, prefecture, county, detail) of canonical addresses: the region names an address
    starts with (levels it leaves out are ""), and what follows them."""
    return [_split_one(str(t)) for t in canonicals]


def same_address(a: tuple[str, str, str, str], b: tuple[str, str, str, str]) -> bool:
    """Two `split` addresses are one: the same detail (long enough), no level named differently."""
    if a[3] != b[3] or len(a[3]) < MIN_DETAIL:
        return False
    return bool(same_regions(np.array([a[:3]], dtype=object), np.array([b[:3]], dtype=object))[0])


def same_regions(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row, whether two arrays of (province, prefecture, county) name no level differently
    (`same_address` for many pairs whose details are already equal and long enough). Where both
    name the same prefecture, the provinces are not compared: a prefecture moved to another
    province keeps its name (四川省重庆市 before 1997, 重庆市 since)."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    agree = (a == b) | (a == "") | (b == "")
    agree[:, 0] |= (a[:, 1] == b[:, 1]) & (a[:, 1] != "")
    return agree.all(axis=1)
