"""Junk in every column must never raise: each value is checked, reported or quarantined."""

from __future__ import annotations


from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.columns import CANONICAL

from tests.helpers import evaluate_all, frame_of

JUNK = [None, "", " ", "nan", "None", "€", "０１２", "x", "X" * 300, "\x00", "=1+1", "0", "1e308", "-1",
        "１９９０－０１－０１", "2024-02-29", "1900-02-29", "9999-12-31", "0000-00-00", "男女", "\u200b", "NULL"]


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
