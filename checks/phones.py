"""Phone numbers (SPEC 2.5): E.164 for region CN, with phonenumbers' own metadata applied
column-wise.

phonenumbers costs ~40 µs a call. Plain shapes (an optional +86/0086/86 prefix, separators,
an 11-digit mobile or a 0-prefixed landline) are normalised with vectorised string operations,
and their validity is phonenumbers' own rule evaluated over the whole column: the national
number must match the region's general pattern and lengths and at least one number type's
pattern (`phonenumberutil._number_type_helper`), with the same regular expressions, run by
Arrow. Every other shape (extensions, 转, letters, foreign prefixes) goes through
`phonenumbers.parse` one value at a time. Tests hold both paths equal to per-row phonenumbers.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers

_SEPARATORS = r"[\s\-()\[\]./·]"
# an extension after an explicit marker (phonenumbers does not know 转 or 分机); kept apart, not in E.164
_EXTENSION = r"\s*(?:转|分机|EXT\.?|X|#|-)\s*(\d{1,6})$"
_MOBILE = r"^(?:\+86|0086|86)?(1\d{10})$"
_LANDLINE = r"^(?:(?:\+86|0086)0?|0)([1-9]\d{8,10})$"
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line", "mobile")


@lru_cache(maxsize=1)
def _descs() -> tuple[tuple[str, tuple[int, ...]], list[tuple[str, tuple[int, ...]]]]:
    md = phonenumbers.PhoneMetadata.metadata_for_region("CN")
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
    """phonenumbers' is_valid_number for CN national numbers, over a column."""
    general, types = _descs()
    ok = _matches(national, *general)
    any_type = pd.Series(False, index=national.index)
    for pattern, lengths in types:
        any_type |= _matches(national, pattern, lengths or general[1])
    return ok & any_type


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
    ext = s.str.extract(_EXTENSION)[0]
    head = s.str.replace(_EXTENSION, "", regex=True)
    split = ext.notna() & head.str.replace(_SEPARATORS, "", regex=True).str.fullmatch(r"(?:\+86|0086)?0\d{9,11}", na=False)
    if split.any():
        s = s.where(~split, head)
    compact = s.str.replace(_SEPARATORS, "", regex=True)
    mobile = compact.str.extract(_MOBILE)[0]
    landline = compact.str.extract(_LANDLINE)[0]
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
