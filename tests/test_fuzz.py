"""Fuzzing (issue 8 item 5): the normalisers, the identity-number parser, phone and account
normalisation, masking and the readers, fed arbitrary text and bytes by hypothesis. They may
answer "invalid" or refuse the file with our typed errors (`checks.exceptions.ValidationError`,
`pipeline.errors.InputError`); anything else raised is a bug.

Text strategies cover every Unicode category hypothesis draws (other-script digits such as
'١٢٣', full-width forms, combining marks, NUL and other controls), not only the characters our
samples use."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import string

import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from checks import phones, ric
from checks.contacts import luhn_ok
from checks.exceptions import InvalidComponent, ValidationError
from checks.masking import mask_account, mask_text, mask_id, mask_name, mask_phone
from checks.ric_vector import analyse
from pipeline.ingest.columns import CANONICAL, EXTRACT_COLUMNS, alias_map
from pipeline.errors import InputError
from pipeline.ingest import read_extract
from pipeline.ingest.clean import clean_text
from pipeline.rows.normalise import parse_dates, parse_sex, parse_term_years
from tests.helpers import evaluate_all, frame_of

TODAY = dt.date(2026, 11, 20)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# digits of other scripts, full-width forms and the characters numbers are written with
NUMBERISH = st.sampled_from(list(string.digits) + list("Xx+-() .·/#转分机０１２３４５６７８９Ｘ") +
                            ["١", "٣", "۵", "६", "๗", "\u200b", "\x00", "\ufeff", "\u3000", "\u0301"])
TEXTS = st.one_of(st.text(max_size=40), st.text(NUMBERISH, max_size=24))
COLUMN = st.lists(st.one_of(st.none(), TEXTS), max_size=30)


def series(values: list[str | None]) -> pd.Series:
    return pd.Series(pd.array(values, dtype="str"))


# ---- normalisers -------------------------------------------------------------------------


@FUZZ
@given(COLUMN)
@example(["١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦", "1990-02-30", "32875.000", "+٨٦ 139"])
def test_normalisers_take_any_text(values):
    s = series(values)
    cleaned = clean_text(s, {"不详", "N/A"})
    assert len(cleaned) == len(s)
    assert not cleaned.dropna().str.contains("\x00").any()
    dates = parse_dates(cleaned.dropna().astype("str"))
    assert dates.isna().all() or dates.dropna().between(pd.Timestamp("1000-01-01"), pd.Timestamp("9999-12-31")).all()
    assert set(parse_sex(cleaned.dropna().astype("str")).dropna()) <= {"M", "F"}
    years = parse_term_years(cleaned.dropna().astype("str"))
    assert not (years.dropna() < 0).any()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), TEXTS), min_size=len(CANONICAL), max_size=len(CANONICAL)),
                min_size=1, max_size=6))
@example([["١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦"] * len(CANONICAL)])
def test_every_rule_on_the_normalised_frame_of_any_text(cells):
    """Normalisation, the parsed-frame contract (pandera) and every rule of the catalogue."""
    evaluate_all(frame_of(cells))


# ---- identity numbers --------------------------------------------------------------------


@FUZZ
@given(TEXTS)
@example("4.40106E+17")
@example("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X")
@example("11010519491231002X\u0301")
@example("110105000000000")
def test_identity_parser_raises_only_validation_errors(text):
    for fn in (ric.validate, ric.get_birth_date, ric.get_sex, ric.get_address_code, ric.upgrade):
        try:
            fn(text)
        except ValidationError:
            pass
    assert isinstance(ric.is_valid(text), bool)
    assert isinstance(ric.is_corrupted(text), bool)


@FUZZ
@given(COLUMN)
@example(["١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "11010519491231002é", "1101051949123100２X", "11010549123100é"])
def test_vectorised_analysis_agrees_with_the_parser_on_any_text(values):
    found = analyse(series([None if v is None else ric.compact(v) for v in values]), TODAY)  # normalised first
    assert len(found) == len(values)
    for value, status in zip(values, found["status"]):
        if value is None:
            continue
        try:
            ric.validate(value, TODAY)
            scalar = "ok"
        except InvalidComponent:  # birth date or address code: the vectorised analysis flags those apart
            scalar = "ok"
        except ValidationError:
            scalar = "bad"
        assert (status == "ok") == (scalar == "ok"), (value, status, scalar)


# ---- phones and accounts -------------------------------------------------------------------


@FUZZ
@given(COLUMN)
@example(["١٣٩١٢٣٤٥٦٧٨", "+86 139 1234 5678 转 ١٢", "\x00", "0086-10-6552-9988#12"])
def test_phone_normalisation_takes_any_text(values):
    s = series(values)
    got = phones.normalise(s)
    assert len(got) == len(s)
    e164 = got["e164"].dropna()
    assert e164.str.fullmatch(r"\+\d+", na=False).all(), e164.tolist()
    assert got.loc[got["valid"], "e164"].str.startswith("+86").all()
    national = got["national"].dropna()
    assert national.map(str.isascii).all()


@FUZZ
@given(st.lists(st.text(st.sampled_from(list(string.digits) + ["١", "٣", "६", "０"]), min_size=16, max_size=19),
                max_size=20))
def test_luhn_takes_any_digit_text(values):
    s = series(values)
    card = s.str.fullmatch(r"\d{16,19}", na=False)
    assert len(luhn_ok(s[card])) == int(card.sum())


@FUZZ
@given(COLUMN)
@example(["00000000000", "6222021234567890123", "1012345678", "12345678", "95588"])
def test_masking_never_shows_a_long_digit_run(values):
    s = series(values)
    for fn, hidden in ((mask_id, 2), (mask_phone, 4), (mask_account, 4), (mask_name, 1)):
        masked = fn(s)
        assert len(masked) == len(s)
        for value, shown in zip(values, masked):
            if value is None:
                continue
            assert not re.search(r"[0-9]{7,}", shown), (fn.__name__, value, shown)
            if "*" not in value and len(value) >= 8:  # enough of it stays hidden
                assert shown.count("*") >= min(hidden, len(value) - 2), (fn.__name__, value, shown)
    for value in values:
        shown = mask_text(value or "")
        assert not re.search(r"[0-9]{7,}", shown), shown


# ---- readers -----------------------------------------------------------------------------

HEADER = [c.aliases[0] for c in EXTRACT_COLUMNS]
MAPPING = alias_map(EXTRACT_COLUMNS)


def read(path) -> None:
    """Read a file as an extract: it succeeds with every record accounted for, or raises InputError."""
    try:
        got = read_extract([path], MAPPING)
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message and str(path.name) in message, message
        return
    info = got.inputs[0]
    assert info.rows == len(got.frame) + len(got.quarantine), (info.rows, len(got.frame), len(got.quarantine))
    assert got.quarantine["line"].notna().all()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000))
@example(b"")
@example(b"\xef\xbb\xbf")
@example(b"PK\x03\x04garbage")
@example(b"PAR1\x00\x00PAR1")
@example(b"\xd0\xcf\x11\xe0")
@example("保单号\n".encode("gbk")[:3])
def test_reader_takes_any_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "night.csv"
    path.write_bytes(data)
    read(path)


@st.composite
def delimited_files(draw):
    delimiter = draw(st.sampled_from([",", "\t", "|", ";"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]))
    line_end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    width = len(HEADER)
    cells = st.one_of(TEXTS, st.sampled_from(['"', '""', 'a"b', "\n", "\r\n", delimiter, "=1+1", "\x00"]))
    rows = draw(st.lists(st.lists(cells, min_size=max(width - 2, 0), max_size=width + 2), max_size=12))
    buf = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]))
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=line_end, quoting=quoting, escapechar="\\")
    writer.writerow(HEADER)
    for r in rows:
        try:
            writer.writerow(r)
        except csv.Error:
            buf.write(delimiter.join(r) + line_end)  # written raw: an unbalanced or bare quote stays
    if draw(st.booleans()):  # a record cut short by a truncated transfer
        buf.write(delimiter.join(draw(st.lists(TEXTS, max_size=4))))
    return buf.getvalue().encode(encoding, errors="replace")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delimited_files())
def test_reader_takes_any_delimited_text(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("text") / "night.txt"
    path.write_bytes(data)
    read(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
                                   st.integers(-10**20, 10**20), st.floats(allow_nan=True), st.booleans(),
                                   st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1))),
                         min_size=len(HEADER) - 1, max_size=len(HEADER) + 1), max_size=8),
       st.integers(0, 3))
def test_xlsx_reader_takes_any_cells(tmp_path_factory, rows, title_rows):
    path = tmp_path_factory.mktemp("xlsx") / "night.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    for i in range(title_rows):
        sheet.append([f"标题{i}"])
    sheet.append(HEADER)
    for r in rows:
        try:
            sheet.append(r)
        except (ValueError, TypeError):  # openpyxl refuses some values outright: not a file we can meet
            assume(False)
    book.save(path)
    read(path)


@pytest.mark.parametrize("name", ["night.csv", "night.xlsx", "night.parquet"])
def test_reader_refuses_a_directory_and_a_missing_file(tmp_path, name):
    (tmp_path / "dir.csv").mkdir()
    for path in (tmp_path / "dir.csv", tmp_path / name):
        with pytest.raises(InputError, match=path.name):
            read_extract([path], MAPPING)
