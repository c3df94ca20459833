"""What the night's batch expectations (pipeline.night.expectations) need of its rows, taken chunk
by chunk while the rows are checked: missing key fields and the coded columns' distinct values."""

from __future__ import annotations

import pandas as pd

from checks.masking import mask_text

KEY_FIELDS = ["applicant_name", "applicant_id_no", "applicant_phone", "branch",
              "channel", "agent_code"]
CODED = {"applicant_sex": "sex", "insured_sex": "sex", "applicant_id_type": "id_type", "insured_id_type": "id_type",
         "channel": "channel"}
MAX_DISTINCT = 1000  # coded values kept per column: a value set has a few dozen; the rest only adds failures


def profile(checked: pd.DataFrame) -> dict:
    """What the suite needs of one chunk's in-scope rows: missing key fields, coded values (masked
    with mask_text: a shifted export puts identity numbers and phones into the sex column, and
    the values a failed value set shows go into Data Docs, the manifest and the store)."""
    values: dict[str, set] = {}
    for column, kind in CODED.items():
        if column in checked.columns:
            seen = checked[column].dropna().astype(str).str.strip()
            seen = seen.str.upper() if kind == "sex" else seen
            distinct = [v for v in seen.unique()[:MAX_DISTINCT] if v]
            kept = values.setdefault(kind, set())
            kept.update(mask_text(v) for v in distinct[:max(0, MAX_DISTINCT - len(kept))])
    return {"rows": len(checked), "values": values,
            "nulls": {name: int(checked[name].isna().sum()) for name in KEY_FIELDS if name in checked.columns}}


def merge_profiles(a: dict | None, b: dict) -> dict:
    if a is None:
        return b
    values = {k: set(sorted(a["values"].get(k, set()) | b["values"].get(k, set()))[:MAX_DISTINCT])
              for k in a["values"].keys() | b["values"]}
    nulls = {k: a["nulls"].get(k, 0) + b["nulls"].get(k, 0) for k in a["nulls"].keys() | b["nulls"]}
    return {"rows": a["rows"] + b["rows"], "values": values, "nulls": nulls}
