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

from pipeline.ingest.columns import (AGENT_COLUMNS, BY_NAME, CANONICAL, COMPLAINT_COLUMNS, DATE_COLUMNS, REQUIRED,
                                     SEX_COLUMNS)
from pipeline.errors import InputError

HEADER = pa.DataFrameSchema(
    {name: pa.Column(required=name in REQUIRED, nullable=True) for name in CANONICAL},
    name="extract header",
)

# The roster must say who the agent is and which phone is theirs (PHONE_IS_AGENT); the rest may be absent.
ROSTER_REQUIRED = ("agent_code", "agent_phone")
ROSTER_HEADER = pa.DataFrameSchema(
    {c.name: pa.Column(required=c.name in ROSTER_REQUIRED, nullable=True) for c in AGENT_COLUMNS},
    name="agent roster header",
)
ROSTER_LABELS = {c.name: c.label for c in AGENT_COLUMNS}

PARSED = pa.DataFrameSchema(
    {
        **{name: pa.Column(str, nullable=True) for name in CANONICAL},
        **{f"{name}_dt": pa.Column("datetime64[us]", nullable=True) for name in DATE_COLUMNS},
        **{f"{name}_code": pa.Column(str, pa.Check.isin(["M", "F"]), nullable=True) for name in SEX_COLUMNS},
        **{f"{name}_e164": pa.Column(str, pa.Check.str_startswith("+"), nullable=True)
           for name in ("applicant_phone", "insured_phone")},
        **{f"{name}_valid": pa.Column(bool) for name in ("applicant_phone", "insured_phone")},
        "bank_account_digits": pa.Column(str, nullable=True),
        "is_self": pa.Column(bool),
        "_file": pa.Column(int),
        "_line": pa.Column(int, pa.Check.ge(1)),
    },
    name="parsed extract",
)


def check_columns(names: list[str], source: str, schema: pa.DataFrameSchema = HEADER,
                  labels: dict[str, str] | None = None) -> None:
    """Raise InputError naming `source` and every required column its header lacks, by its
    canonical name and every header it is known by (a file names it by one of them: the
    operator recognises theirs)."""
    labels = labels or {m: " / ".join(dict.fromkeys((c.label, *c.aliases))) for m, c in BY_NAME.items()}
    try:
        schema.validate(pd.DataFrame(columns=list(names)), lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        missing = cases.loc[cases["check"] == "column_in_dataframe", "failure_case"].tolist()
        if not missing:
            raise
        named = ", ".join(f"{m} ({labels[m]})" for m in missing)
        raise InputError(f"{source}: missing required column{'s' if len(missing) > 1 else ''} {named}") from None


def check_roster_columns(names: list[str], source: str) -> None:
    check_columns(names, source, ROSTER_HEADER, ROSTER_LABELS)


COMPLAINT_HEADER = pa.DataFrameSchema({c.name: pa.Column(required=True, nullable=True) for c in COMPLAINT_COLUMNS},
                                      name="complaints header")


def check_complaint_columns(names: list[str], source: str) -> None:
    check_columns(names, source, COMPLAINT_HEADER, {c.name: c.label for c in COMPLAINT_COLUMNS})


def validate_parsed(frame: pd.DataFrame) -> pd.DataFrame:
    return PARSED.validate(frame, lazy=True)
