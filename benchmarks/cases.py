"""python -m benchmarks.cases [--rows N]: the case store across nights at scale (issue 5).

Night 1 over a generated extract (every item new), the worklists filled in (every fifth row
settled, every fifth in progress) and imported, night 2 over the same extract (carried,
reopened, suppressed), and a re-run of night 2. Baselines measured in the same run:
- the straightforward per-item store (for each finding: SELECT it, then INSERT or UPDATE),
  on night 1's findings, against `reconcile`;
- the same worklists written with openpyxl write-only, against custdq's writer (XlsxWriter workbook, data rows built column-wise).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from openpyxl import Workbook, load_workbook

from benchmarks.__main__ import machine, timed
from pipeline import store
from pipeline.cases.night import _iso
from pipeline.store.schema import items
from pipeline.cases.items import DATE_FIELDS
from pipeline.night.run import NightRequest, run_night
from pipeline.sample import write_sample
from pipeline.outputs.worklists import COLUMNS, _cells, write_worklists


def naive_store(url: str, fired: pd.DataFrame) -> None:
    """Baseline: one SELECT and one INSERT/UPDATE per finding."""
    engine = store.open_store(url)
    fired = fired.copy()
    for col in DATE_FIELDS:
        fired[col] = _iso(fired[col])
    columns = [c.name for c in items.c]
    with engine.begin() as conn:
        for record in fired.to_dict("records"):
            have = conn.execute(sa.select(items.c.item_id).where(items.c.item_id == record["item_id"])).first()
            values = {c: (None if pd.isna(record.get(c)) else record.get(c)) for c in columns if c in record}
            values.update(state="open", work_state="未处理", last_seen=record["business_date"])
            if have:
                conn.execute(items.update().where(items.c.item_id == record["item_id"]).values(**values))
            else:
                conn.execute(items.insert().values(**values))


def openpyxl_worklists(listing: pd.DataFrame, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for branch, part in listing.groupby(listing["branch"].fillna("未知机构")):
        book = Workbook(write_only=True)
        sheet = book.create_sheet("问题件清单")
        sheet.append([c[0] for c in COLUMNS])
        for values in _cells(part).itertuples(index=False, name=None):
            sheet.append(list(values))
        book.save(out / f"{branch}.xlsx")


def fill(folder: Path, target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    done = []
    for path in sorted(folder.glob("*.xlsx")):
        book = load_workbook(path)
        sheet = book.active
        headers = [c.value for c in sheet[1]]
        state, result = headers.index("处理状态") + 1, headers.index("处理结果") + 1
        for r in range(2, sheet.max_row + 1):
            if r % 5 == 0:
                sheet.cell(r, state, "已完成")
                sheet.cell(r, result, ["已更正", "核实无误", "虚假资料"][r % 3])
            elif r % 5 == 1:
                sheet.cell(r, state, "处理中")
        book.save(target / path.name)
        done.append(target / path.name)
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="custdq-cases-"))
    extract = work / "night.csv"
    write_sample(args.rows, args.seed, str(extract))
    url = f"sqlite:///{work / 'cases.db'}"
    t1 = dt.date(2026, 11, 20)
    t2 = dt.date(2026, 11, 23)

    s1, r1 = timed(lambda: run_night(NightRequest([str(extract)], t1, str(work / "n1"), url, quiet=True)))
    listing = r1.items
    base_s, _ = timed(lambda: naive_store(f"sqlite:///{work / 'naive.db'}", listing))
    xl_s, _ = timed(lambda: write_worklists(listing, work / "wl"))
    opx_s, _ = timed(lambda: openpyxl_worklists(listing, work / "wl-openpyxl"))
    filled = fill(r1.out_dir / "worklists", work / "filled")
    from pipeline.cases.imports import import_worklists
    engine = store.open_store(url)
    with engine.begin() as conn:
        imp_s, report = timed(lambda: import_worklists(conn, [str(p) for p in filled], "bench"))
    s2, r2 = timed(lambda: run_night(NightRequest([str(extract)], t2, str(work / "n2"), url, quiet=True)))
    s3, r3 = timed(lambda: run_night(NightRequest([str(extract)], t2, str(work / "n2"), url, quiet=True)))

    n = len(listing)
    rows = [
        ("night 1: cases stage (all new)", r1.manifest["timings_seconds"]["cases"], n,
         "per-item SELECT + INSERT", base_s),
        ("worklists, column-wise rows in an XlsxWriter book", xl_s, n, "openpyxl write-only", opx_s),
    ]
    print(f"\ncustdq case-store benchmark — {args.rows:,} rows, {n:,} items on {machine()}\n")
    print(f"| {'measure':<40} | {'s':>7} | {'items/s':>9} | {'baseline':<26} | {'s':>7} | {'speed-up':>8} |")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 11}|{'-' * 28}|{'-' * 9}|{'-' * 10}|")
    for name, s, count, bname, b in rows:
        print(f"| {name:<40} | {s:7.2f} | {count / s:9,.0f} | {bname:<26} | {b:7.2f} | {b / s:7.2f}x |")
    print(f"\nimport of {sum(f['rows'] for f in report.files):,} worklist rows: {imp_s:.1f}s "
          f"({report.applied:,} applied)")
    for label, s, r in (("night 1", s1, r1), ("night 2", s2, r2), ("night 2 re-run", s3, r3)):
        m = r.manifest
        print(f"{label}: {s:.1f}s whole night, cases stage {m['timings_seconds']['cases']}s, items {m['items']}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"cases-{args.rows}.json").write_text(json.dumps({
        "rows": args.rows, "items": n, "machine": machine(),
        "cases_stage_s": [r.manifest["timings_seconds"]["cases"] for r in (r1, r2, r3)],
        "naive_store_s": round(base_s, 2), "xlsxwriter_s": round(xl_s, 2), "openpyxl_s": round(opx_s, 2),
        "import_s": round(imp_s, 2), "import": report.to_dict(),
        "nights": [r.manifest["items"] for r in (r1, r2, r3)]}, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
