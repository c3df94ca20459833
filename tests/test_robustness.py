"""Junk in every column must never raise: each value is checked, reported or quarantined."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.findings import FINDING_COLUMNS, RuleContext
from checks.catalogue import EVALUATORS
from pipeline import config
from pipeline.columns import CANONICAL, EXTRACT_COLUMNS
from pipeline.contract import validate_parsed
from pipeline.normalise import normalise

JUNK = [None, "", " ", "nan", "None", "€", "０１２", "x", "X" * 300, "\x00", "=1+1", "0", "1e308", "-1",
        "１９９０－０１－０１", "2024-02-29", "1900-02-29", "9999-12-31", "0000-00-00", "男女", "\u200b", "NULL"]


def frame_of(cells: list[list[object]]) -> pd.DataFrame:
    raw = pd.DataFrame({c: pd.array([r[i] for r in cells], dtype="str") for i, c in enumerate(CANONICAL)})
    raw["_file"] = 0
    raw["_line"] = np.arange(2, len(raw) + 2)
    return raw


def evaluate_all(raw: pd.DataFrame) -> None:
    cfg = config.defaults()
    frame = normalise(raw, cfg)
    validate_parsed(frame)
    agents = pd.DataFrame({c: raw[col].reset_index(drop=True) for c, col in
                           [("agent_code", "agent_code"), ("agent_name", "applicant_name"),
                            ("agent_phone", "applicant_phone"), ("agent_id_no", "applicant_id_no"),
                            ("branch", "branch")]})
    params = {k: cfg[k] for k in ("minor_age", "id_card_types", "residence_permit_types", "foreign_permanent_types",
                                  "phone_placeholders")}
    ctx = RuleContext(dt.date(2026, 11, 20), raw, {c.name: c.label for c in EXTRACT_COLUMNS}, params, agents)
    for code, fn in EVALUATORS.items():
        out = fn(frame, ctx)
        assert list(out.columns) == FINDING_COLUMNS, code
        assert out["row"].isin(frame.index).all(), code


def test_every_junk_value_in_every_column():
    cells = [[junk] * len(CANONICAL) for junk in JUNK]
    evaluate_all(frame_of(cells))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.text(max_size=20), st.sampled_from(JUNK)),
                         min_size=len(CANONICAL), max_size=len(CANONICAL)), min_size=1, max_size=8))
def test_random_text_never_raises(cells):
    evaluate_all(frame_of(cells))


def test_empty_frame():
    evaluate_all(frame_of([]))
