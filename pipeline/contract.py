"""The executable contract of an extract, in pandera.

Two schemas, matching pandera's split between structure and data problems:

- `HEADER`: which columns a file must have (SPEC 2.1). A failure is an input error, exit 2,
  naming the file and every missing column with its Chinese name.
- `PARSED`: what normalisation hands to the rules: every canonical column as nullable text,
  each key date parsed to a timestamp column (`<col>_dt`), each sex parsed to `M`/`F`
  (`<col>_code`), plus the flags the rules and the manifest read. A failure here is a bug in
  custdq, never the operator's fault, so it is raised as such.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from pipeline.columns import BY_NAME, CANONICAL, DATE_COLUMNS, REQUIRED, SEX_COLUMNS
from pipeline.errors import InputError

HEADER = pa.DataFrameSchema(
    {name: pa.Column(required=name in REQUIRED, nullable=True) for name in CANONICAL},
    name="extract header",
)

PARSED = pa.DataFrameSchema(
    {
        **{name: pa.Column(str, nullable=True) for name in CANONICAL},
        **{f"{name}_dt": pa.Column("datetime64[us]", nullable=True) for name in DATE_COLUMNS},
        **{f"{name}_code": pa.Column(str, pa.Check.isin(["M", "F"]), nullable=True) for name in SEX_COLUMNS},
        "is_self": pa.Column(bool),
        "_file": pa.Column(int),
        "_line": pa.Column(int, pa.Check.ge(1)),
    },
    name="parsed extract",
)


def check_columns(names: list[str], source: str) -> None:
    """Raise InputError naming `source` and every required column its header lacks."""
    try:
        HEADER.validate(pd.DataFrame(columns=list(names)), lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        missing = cases.loc[cases["check"] == "column_in_dataframe", "failure_case"].tolist()
        if not missing:
            raise
        named = ", ".join(f"{m} ({BY_NAME[m].label})" for m in missing)
        raise InputError(f"{source}: missing required column{'s' if len(missing) > 1 else ''} {named}") from None


def validate_parsed(frame: pd.DataFrame) -> pd.DataFrame:
    return PARSED.validate(frame, lazy=True)
