"""A text value as every later stage reads it: half-width, trimmed, invisible characters gone,
placeholders and empties missing (SPEC 2.5). Used by the night's normalisation
(pipeline.rows.normalise) and the agents' roster (pipeline.ingest.roster)."""

from __future__ import annotations

import pandas as pd

from pipeline.ingest.columns import HALF_WIDTH

_FULLWIDTH_RE = "[\uff01-\uff5e\u3000]"
_STRIP = " \t\r\n\u00a0\u3000\u200b\ufeff"
_CONTROL_RE = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]"  # invisible characters a value never needs


def clean_text(series: pd.Series, placeholders: set[str]) -> pd.Series:
    r"""Half-width, trimmed, placeholders and empties to missing.

    >>> clean_text(pd.Series(["　ＡＢ１２ ", "不详", "", "n/a", "张\x00三"], dtype="str"), {"不详", "N/A"}).tolist()
    ['AB12', nan, nan, nan, '张三']
    """
    s = series.astype("str")
    wide = s.str.contains(_FULLWIDTH_RE, regex=True, na=False)
    if wide.any():
        s = s.where(~wide, s[wide].str.translate(HALF_WIDTH))
    hidden = s.str.contains(_CONTROL_RE, regex=True, na=False)
    if hidden.any():
        s = s.where(~hidden, s[hidden].str.replace(_CONTROL_RE, "", regex=True))
    s = s.str.strip(_STRIP)
    blank = (s == "") | s.str.upper().isin(placeholders)
    return s.mask(blank.fillna(False))
