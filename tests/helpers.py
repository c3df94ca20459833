"""Helpers the test modules share (plain functions and constants; the fixtures are in
conftest.py): a valid extract row and writers for every input format, reading a night's
outputs back, a fresh PostgreSQL database, worklists filled in as the teams would, the store's
rows, and the comparisons of two nights."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from stdnum.cn import ric

from checks.catalogue import EVALUATORS
from checks.findings import FINDING_COLUMNS, NotApplicable
from pipeline import settings, store
from pipeline.ingest.columns import BY_NAME, CANONICAL
from pipeline.ingest.contract import validate_parsed
from pipeline.rows.normalise import normalise
from pipeline.rules import context

CANONICAL_ORDER = list(BY_NAME)


PG_CREATED: list[str] = []  # databases made on the local PostgreSQL server by this session
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
VOLATILE = {"timings_seconds", "started_at", "finished_at", "peak_memory_mb", "peak_memory_mb_after_stage",
            "memory_mb_after_stage", "outputs", "case_store", "chunks", "expectations"}


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


def read_outputs(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    items = pd.read_csv(out / "items.csv", dtype=str, keep_default_na=False)
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return items, quarantine, manifest


def reconciles(manifest: dict) -> bool:
    r = manifest["rows"]
    return r["rows_read"] == r["rows_in_scope"] + r["rows_out_of_scope"] + r["rows_quarantined"]


def postgres_url() -> str:
    """A fresh database on the local server, or skip with the reason."""
    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"custdq_test_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f"create database {name}"))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no PostgreSQL server reachable at 127.0.0.1:5432 ({type(exc).__name__})")
    PG_CREATED.append(name)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def stable(value):
    """A manifest part without its timings (`seconds`), for comparison."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def worklist_cells(out: Path) -> dict[str, list]:
    cells = {}
    for path in sorted((out / "worklists").glob("*.xlsx")):
        ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
        cells[path.name] = [list(r) for r in ws.iter_rows(values_only=True)]
    return cells


def store_items(db: str) -> pd.DataFrame:
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        table = pd.read_sql("select * from items order by item_id", conn)
    engine.dispose()
    return table.drop(columns=[c for c in table.columns if c.endswith("_at")])


def person(n: int, role: str = "applicant", sex: str = "男", **over) -> dict:
    """Customer n as the `role` of a policy: own name, birth date, ID number, phone and card."""
    birth = f"19{70 + n % 30:02d}-0{1 + n % 9}-1{n % 10}"
    seq = f"{(2 * n + 1) if sex == '男' else (2 * n + 2):03d}"[-3:]
    fields = {
        "name": f"客户{n}号", "sex": sex, "birth_date": birth, "id_type": "身份证",
        "id_no": id_no("440106" + birth.replace("-", "") + seq), "phone": f"139{n:08d}",
    }
    out = {f"{role}_{k}": v for k, v in fields.items()}
    if role == "applicant":
        out |= {"bank_account": f"62220200{n:011d}", "bank_account_holder": fields["name"]}
    return out | over


def policy(no: str, applicant: int, insured: int | None = None, **over) -> dict:
    """A policy of customer `applicant`; the insured is customer `insured`, or the applicant (本人)."""
    base = row(policy_no=no, **person(applicant))
    if insured is None:
        base |= {"relation": "本人", "insured_name": "", "insured_sex": "", "insured_birth_date": "",
                 "insured_id_type": "", "insured_id_no": "", "insured_phone": ""}
    else:
        base |= person(insured, "insured", sex="女") | {"relation": "配偶"}
    return base | over


def settings_with(partial: dict) -> settings.Settings:
    """The packaged defaults with `partial` merged over them as a config file's settings would be,
    checked (a test's settings without writing a file): settings_with({"store": {"undo_nights": 3}})."""
    return settings.from_mapping(partial, "settings_with")


def frame_of(cells: list[list[object]]) -> pd.DataFrame:
    raw = pd.DataFrame({c: pd.array([r[i] for r in cells], dtype="str") for i, c in enumerate(CANONICAL)})
    raw["_file"] = 0
    raw["_line"] = np.arange(2, len(raw) + 2)
    return raw


def evaluate_all(raw: pd.DataFrame) -> None:
    cfg = settings.load()
    frame = normalise(raw, cfg)
    validate_parsed(frame)
    agents = pd.DataFrame({c: raw[col].reset_index(drop=True) for c, col in
                           [("agent_code", "agent_code"), ("agent_name", "applicant_name"),
                            ("agent_phone", "applicant_phone"), ("agent_id_no", "applicant_id_no"),
                            ("branch", "branch"), ("agent_address", "applicant_address"),
                            ("agent_bank_account", "bank_account")]})
    ctx = context(dt.date(2026, 11, 20), raw, cfg, agents)  # the night's own RuleContext (pipeline.rules)
    for code, fn in EVALUATORS.items():
        try:
            out = fn(frame, ctx)
        except NotApplicable:  # a roster column all blank: the rule says so (the engine records it), raises nothing else
            continue
        assert list(out.columns) == FINDING_COLUMNS, code
        assert out["row"].isin(frame.index).all(), code


def night(invoke, tmp_path, rows):
    out = tmp_path / "out"
    result = invoke("run", str(write_csv(tmp_path / "e.csv", rows)), "--business-date", "2026-11-20",
                    "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    items = read_outputs(out)[0]
    items = items[items["rule_code"].str.startswith(("PHONE_", "BANK_"))]
    return sorted(zip(items["policy_no"], items["rule_code"], items["field"])), items


def fill(out: Path, choices: dict[str, tuple], target: Path) -> list[Path]:
    """Copy the night's worklists to `target`, filling in 处理状态/处理结果/处理说明
    for the given item ids, as a person would in Excel."""
    target.mkdir(exist_ok=True)
    written = []
    for path in sorted((out / "worklists").glob("*.xlsx")):
        book = load_workbook(path)
        sheet = book.active
        headers = [c.value for c in sheet[1]]
        for r in range(2, sheet.max_row + 1):
            item_id = sheet.cell(r, 1).value
            if item_id in choices:
                for header, value in zip(["处理状态", "处理结果", "处理说明"], choices[item_id]):
                    sheet.cell(r, headers.index(header) + 1, value)
        book.save(target / path.name)
        written.append(target / path.name)
    return written


def store_rows(db: str, table: sa.Table) -> pd.DataFrame:
    with store.open_store(db).connect() as conn:
        result = conn.execute(sa.select(table))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def item_of(found: pd.DataFrame, policy_no: str, rule: str, role: str | None = None) -> str:
    hit = found[(found["policy_no"] == policy_no) & (found["rule_code"] == rule)]
    if role:
        hit = hit[hit["role"] == role]
    assert len(hit) == 1, hit
    return hit["item_id"].iloc[0]


@contextlib.contextmanager
def contact_index(db: str):
    """The store's contact index (pipeline.book.database), open read-only, as a ContactIndex."""
    from pipeline import settings, store
    from pipeline.book import database
    from pipeline.book.index import ContactIndex

    cfg = settings.load()
    engine = store.open_store(db, create=False)
    index = database.open_existing(engine, db, cfg, store.existing_key(engine, db, cfg), read_only=True)
    assert index is not None, f"{db} has no contact index"
    try:
        yield ContactIndex(index)
    finally:
        index.close()
        engine.dispose()


def night_with_roster(invoke, tmp_path: Path, db: str, rows: list[dict], agents: list[dict], rule: str):
    """One night (2026-11-20) of `rows` with the roster `agents`, both CSV, into the store `db`:
    (the items of `rule`, the manifest)."""
    roster = write_csv(tmp_path / "agents.csv", agents)
    out = tmp_path / "out"
    result = invoke("run", str(write_csv(tmp_path / "e.csv", rows)), "--business-date", "2026-11-20",
                    "--agents", str(roster), "--out", str(out), "--quiet", "--db", db)
    assert result.exit_code == 0, result.output
    items, _, manifest = read_outputs(out)
    return items[items["rule_code"] == rule], manifest


def approve_all(db: str, by: str = "复核员") -> int:
    """Approve every settled item waiting in 待复核 (review.results), as a reviewer of its
    branch would in the web app (pipeline.cases.disposition.approve, the web app's code path):
    for the tests of what a settled item does next. Returns how many were approved."""
    from pipeline import clock
    from pipeline.cases.disposition import approve, review_problem
    from pipeline.cases.labels import REVIEW_STATE
    from pipeline.cases.undo import python_value
    from pipeline.store.schema import items

    engine = sa.create_engine(db)
    now = clock.now()
    with engine.begin() as conn:
        waiting = [{k: python_value(v) for k, v in r.items()} for r in
                   conn.execute(sa.select(items).where(items.c.work_state == REVIEW_STATE)).mappings()]
        for item in waiting:
            assert review_problem(item, by) is None
            approve(conn, item, by, now.isoformat(timespec="seconds"), now.date().isoformat(), "test review")
    engine.dispose()
    return len(waiting)


def png() -> bytes:
    """A real 1x1 PNG (signature, IHDR, IDAT, IEND with their CRCs)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


GATE_OFF = Path(__file__).parent / "data" / "gate_off.yaml"  # the expectations gate off (its comment says why)


def gate_off(invoke):
    """`invoke` whose nights without a --config of their own run with the expectations gate off."""

    def _invoke(*args: str):
        if "run" in args and "--config" not in args:
            args = (*args, "--config", str(GATE_OFF))
        return invoke(*args)

    return _invoke
