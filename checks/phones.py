"""Phone numbers (SPEC 2.5): E.164 for region CN, with phonenumbers' own metadata applied
column-wise.

phonenumbers costs ~40 µs a call. Plain shapes (an optional +86/0086/86 prefix, separators,
an 11-digit mobile or a 0-prefixed landline) are normalised with vectorised string operations,
and their validity is phonenumbers' own rule evaluated over the whole column: the national
number must match the region's general pattern and lengths and at least one number type's
pattern (`phonenumberutil._number_type_helper`), with the same regular expressions, run by
Arrow. Every other shape (extensions, 转, letters, foreign prefixes) goes through
`phonenumbers.parse` one value at a time. Tests hold both paths equal to per-row phonenumbers.
The same way, `fixed_line` and `area_code_length` give phonenumbers' number type and
geographical area code over a column (PHONE_PLACEHOLDER judges a landline's local number).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from checks.arrays import arrow_strings

_SEPARATORS = r"[\s\-()\[\]./·]"
# an extension after an explicit marker (phonenumbers does not know 转 or 分机); kept apart, not in E.164
_EXTENSION = r"\s*(?:转|分机|EXT\.?|X|#|-)\s*(?P<g>[0-9]{1,6})$"
_MOBILE = r"^(?:\+86|0086|86)?(?P<g>1[0-9]{10})$"
_LANDLINE = r"^(?:(?:\+86|0086)0?|0)(?P<g>[1-9][0-9]{8,10})$"
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line", "mobile")


@lru_cache(maxsize=1)
def _cn() -> Any:
    """phonenumbers' CN metadata (its descriptions' fields are optional to a type checker; CN's
    are all there)."""
    md = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    if md is None:
        raise RuntimeError("phonenumbers has no metadata for CN")
    return md


@lru_cache(maxsize=1)
def _descs() -> tuple[tuple[str, tuple[int, ...]], list[tuple[str, tuple[int, ...]]]]:
    md = _cn()
    general = (md.general_desc.national_number_pattern, tuple(md.general_desc.possible_length))
    types = []
    for name in _TYPES:
        desc = getattr(md, name)
        if desc is not None and desc.national_number_pattern:
            types.append((desc.national_number_pattern, tuple(desc.possible_length)))
    return general, types


def _matches(national: pd.Series, pattern: str, lengths: tuple[int, ...]) -> pd.Series:
    ok = national.str.fullmatch(f"(?:{pattern})", na=False)
    if lengths:
        ok &= national.str.len().isin(lengths).fillna(False)
    return ok.astype(bool)


def valid_national(national: pd.Series) -> pd.Series:
    """phonenumbers' is_valid_number for CN national numbers, over a column: the general pattern,
    then any type's pattern, each type tried only on the numbers no earlier type matched."""
    general, types = _descs()
    ok = _matches(national, *general)
    found = pd.Series(False, index=national.index)
    mobile_first = sorted(types, key=lambda t: t[0] != _descs_mobile())
    for pattern, lengths in mobile_first:
        todo = ok & ~found
        if not todo.any():
            break
        found[todo] = _matches(national[todo], pattern, lengths or general[1])
    return ok & found


@lru_cache(maxsize=1)
def _descs_mobile() -> str:
    return _cn().mobile.national_number_pattern


@lru_cache(maxsize=1)
def _formats() -> list[tuple[str | None, str, str]]:
    """(leading digits, pattern, rule) of the CN formats phonenumbers uses for the international
    format (its `intl_number_format`, else `number_format`), in the metadata's order."""
    md = _cn()
    return [(f.leading_digits_pattern[-1] if f.leading_digits_pattern else None, f.pattern, f.format)
            for f in (md.intl_number_format or md.number_format)]


def fixed_line(national: pd.Series) -> pd.Series:
    """phonenumbers' number_type is FIXED_LINE or FIXED_LINE_OR_MOBILE, over a column of CN
    national numbers: the general pattern, none of the types phonenumbers tries before the
    fixed line (premium rate, toll free, shared cost, ...), then the fixed-line pattern.

    >>> fixed_line(pd.Series(["1012345678", "23812345678", "13800138000", "4001234567", None])).tolist()
    [True, False, False, False, False]
    """
    general, _ = _descs()
    md = _cn()
    ok = _matches(national, *general)
    for name in _TYPES[:_TYPES.index("fixed_line")]:
        desc = getattr(md, name)
        if desc is not None and desc.national_number_pattern and ok.any():
            ok &= ~_matches(national, desc.national_number_pattern, tuple(desc.possible_length) or general[1])
    return ok & _matches(national, md.fixed_line.national_number_pattern,
                         tuple(md.fixed_line.possible_length) or general[1])


def area_code_length(national: pd.Series) -> pd.Series:
    """phonenumbers' `length_of_geographical_area_code` for CN national numbers, over a column.

    Only a fixed line has one (China's mobiles are geographic without an area code; any other
    number, valid or not, has none: 0). Its length is the first group of the international
    format phonenumbers formats it with: the first of the metadata's formats whose leading
    digits start the number and whose pattern matches all of it, rewritten by that format's
    rule (Arrow's RE2 kernels, the metadata's own expressions). So an area code is one the
    metadata knows with a local number of a length that area uses: 010 and 0755 are area codes,
    023 with a 9-digit local number is no number at all.

    >>> area_code_length(pd.Series(["1012345678", "75588889999", "23812345678", "2381234567", "13800138000"])).tolist()
    [2, 3, 0, 2, 0]
    """
    national = national.astype("str")
    out = np.zeros(len(national), dtype=np.int64)
    todo = fixed_line(national).to_numpy(dtype=bool, copy=True)
    for leading, pattern, rule in _formats():
        if not todo.any():
            break
        sub = national[todo]
        hit = _matches(sub, pattern, ())
        if leading is not None:
            hit &= sub.str.match(f"(?:{leading})", na=False).astype(bool)
        if not hit.any():
            continue
        formatted = _replace(sub[hit], f"^(?:{pattern})$", rule)
        # the first group after the country code, when another group follows it
        ndc = _group(formatted, r"^[^0-9]*(?P<g>[0-9]+)[^0-9]+[0-9]").str.len().fillna(0)
        where = np.flatnonzero(todo)[hit.to_numpy(dtype=bool)]
        out[where] = ndc.to_numpy(dtype=np.int64)
        todo[where] = False
    return pd.Series(out, index=national.index)


def _replace(values: pd.Series, pattern: str, repl: str) -> pd.Series:
    """Regex replace with Arrow's RE2 kernel (pandas falls back to per-row `re` here)."""
    return pd.Series(pc.replace_substring_regex(arrow_strings(values), pattern, repl), index=values.index, dtype="str")


def _group(values: pd.Series, pattern: str) -> pd.Series:
    """The named group `g` of a regex, or missing (Arrow's RE2 kernel)."""
    arr = arrow_strings(values)
    hit = pc.match_substring_regex(arr, pattern)
    got = pc.extract_regex(pc.if_else(hit, arr, pa.scalar("", pa.string())), pattern).field("g")
    return pd.Series(pc.if_else(hit, got, pa.scalar(None, pa.string())), index=values.index, dtype="str")


def _one(text: str) -> tuple[str | None, bool]:
    """Per-row phonenumbers for the odd shapes: (E.164, valid mainland number)."""
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return None, False
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, number.country_code == 86 and phonenumbers.is_valid_number(number)


def normalise(values: pd.Series) -> pd.DataFrame:
    """Per value: `e164` (None when unparseable), `national` digits, `valid` (a valid mainland number)."""
    s = values.astype("str").str.upper()
    # a trailing extension is split off only where the number without it is a plausible landline
    ext = _group(s, _EXTENSION)
    split = pd.Series(False, index=s.index)
    if ext.notna().any():
        head = _replace(s[ext.notna()], _EXTENSION, "")
        split[ext.notna()] = _replace(head, _SEPARATORS, "").str.fullmatch(r"(?:\+86|0086)?0[0-9]{9,11}", na=False)
        s = s.where(~split, head.reindex(s.index))
    compact = _replace(s, _SEPARATORS, "")
    mobile = _group(compact, _MOBILE)
    landline = _group(compact, _LANDLINE)
    national = mobile.fillna(landline).astype("str")
    # phonenumbers reads a leading 11xxx/12xxx/179xx as a carrier-selection code: leave those to it
    fast = national.notna() & ~national.str.match(r"1(?:[12]|79)", na=False)
    national = national.where(fast)
    out = pd.DataFrame(index=s.index)
    out["national"] = national
    out["extension"] = ext.where(split)
    out["e164"] = ("+86" + national).astype("str")
    out["valid"] = valid_national(national) & fast
    slow = s.notna() & ~fast
    if slow.any():
        parsed = [_one(v) for v in s[slow]]
        e164 = pd.Series([p[0] for p in parsed], index=s[slow].index, dtype="str")
        out.loc[slow, "e164"] = e164
        out.loc[slow, "valid"] = np.array([p[1] for p in parsed], dtype=bool)
        out.loc[slow, "national"] = e164.str.replace(r"^\+86", "", regex=True).where(e164.str.startswith("+86"))
    return out
