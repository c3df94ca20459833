"""Shared helpers: a valid extract row, writers for every input format, the CLI runner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from stdnum.cn import ric

from pipeline.cli import cli
from pipeline.columns import BY_NAME

CANONICAL_ORDER = list(BY_NAME)


def id_no(body17: str) -> str:
    """A resident identity number with a correct check character (python-stdnum as reference)."""
    return body17 + ric.calc_check_digit(body17 + "?")  # stdnum expects a check position


def row(**over) -> dict:
    """One fully valid policy row (canonical names); keyword arguments override fields."""
    base = {
        "policy_no": "P0001", "issue_date": "2026-11-18", "receipt_date": "2026-11-19",
        "product_code": "PL1001", "coverage_years": "20", "channel": "个险", "branch": "广东分公司",
        "agent_code": "A0001", "applicant_name": "张三", "applicant_sex": "男",
        "applicant_birth_date": "1980-05-17", "applicant_id_type": "身份证",
        "applicant_id_no": id_no("44010619800517003"), "applicant_address": "广东省广州市天河区中山路1号",
        "applicant_phone": "13912345678", "insured_name": "李四", "insured_sex": "女",
        "insured_birth_date": "1982-03-04", "insured_id_type": "身份证",
        "insured_id_no": id_no("44010619820304002"), "insured_phone": "13712345678", "relation": "配偶",
        "bank_account": "6222021234567890128", "bank_account_holder": "张三",  # a Luhn-valid card
    }
    base.update(over)
    return base


def write_csv(path: Path, rows: list[dict], encoding: str = "utf-8", headers: dict | None = None,
              delimiter: str = ",") -> Path:
    """Write rows; `headers` maps canonical names to the header text to use (e.g. Chinese aliases)."""
    names = list(rows[0]) if rows else CANONICAL_ORDER
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow([(headers or {}).get(n, n) for n in names])
        for r in rows:
            w.writerow([r.get(n, "") for n in names])
    return path


def chinese_headers() -> dict[str, str]:
    return {c.name: c.aliases[0] for c in BY_NAME.values()}


def write_xlsx(path: Path, rows: list[dict], headers: dict | None = None, title_rows: int = 0,
               extra_first_sheet: bool = False, cell=lambda name, value: value) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    if extra_first_sheet:
        ws.title = "说明"
        ws.append(["本文件为保单清单", "请勿修改"])
        ws = wb.create_sheet("清单")
    for i in range(title_rows):
        ws.append([f"标题行 {i + 1}"])
    names = list(rows[0])
    ws.append([(headers or {}).get(n, n) for n in names])
    for r in rows:
        ws.append([cell(n, r.get(n)) for n in names])
    wb.save(path)
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner, tmp_path):
    """Run `custdq ARGS...` in tmp_path with a private SQLite store; returns the click Result."""

    def _invoke(*args: str):
        db = f"sqlite:///{tmp_path / 'cases.db'}"
        full = list(args)
        if full and full[0] == "run" and "--db" not in full:
            full += ["--db", db]
        return runner.invoke(cli, full, catch_exceptions=False)

    return _invoke


def read_outputs(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    items = pd.read_csv(out / "items.csv", dtype=str, keep_default_na=False)
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return items, quarantine, manifest


def reconciles(manifest: dict) -> bool:
    r = manifest["rows"]
    return r["rows_read"] == r["rows_in_scope"] + r["rows_out_of_scope"] + r["rows_quarantined"]


@pytest.fixture(autouse=True)
def _debug_internal_errors(monkeypatch):
    """Bugs surface as tracebacks in tests; operator-facing errors still exit with one line."""
    monkeypatch.setenv("CUSTDQ_DEBUG", "1")


@pytest.fixture(autouse=True)
def _test_hash_key(monkeypatch):
    """A fixed synthetic hash key, so tests never create key files in the working directory
    (tests of the key file itself remove it)."""
    monkeypatch.setenv("CUSTDQ_HASH_KEY", "custdq-test-key-0123456789abcdef0123456789")


PG_CREATED: list[str] = []  # databases made on the local PostgreSQL server by this session


@pytest.fixture(autouse=True, scope="session")
def _drop_test_databases():
    """Drop the session's PostgreSQL test databases at the end (WITH FORCE: pooled connections)."""
    yield
    if not PG_CREATED:
        return
    import sqlalchemy as sa
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in PG_CREATED:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()
