"""Re-runs leave no trace (issue 15, SPEC 7): a sequence of nights with a wrong run of one
night, followed by its re-run, ends with the same case store (every table, less run timestamps
and surrogate ids: tests/storedump.py) and the same outputs as the clean sequence - and so does
the next night. Older nights are refused without `--rewind`; with it the later nights are taken
back first. On a real SQLite file and on the real PostgreSQL server.

The sequences: a wrong file holding night 1's policy numbers with other contents; a wrong file
of new policy numbers; a wrong file that resolves night 1's items (night 1 corrected); a wrong
file that raises shared-contact items on night 1's policies (new policies with night 1's phones).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.cases import evidence
from pipeline.cases.disposition import assign
from pipeline.cases.undo import python_value
from pipeline.store.schema import attachments, item_events
from pipeline.store.schema import items as items_table

from pipeline.sample import make_sample
from tests.helpers import approve_all, read_outputs
from tests.storedump import differences, dump
from tests.helpers import postgres_url
from tests.helpers import gate_off


@pytest.fixture
def invoke(invoke):
    """The nights of this module run with the expectations gate off (tests/data/gate_off.yaml)."""
    return gate_off(invoke)


DATES = ["2026-11-20", "2026-11-23", "2026-11-24"]
ROWS = 240


def _frames() -> dict[str, pd.DataFrame]:
    """Night 1, the right nights 2 and 3, and the four wrong files (values as text)."""
    n1 = make_sample(ROWS, 11)[0].astype(str)
    other = make_sample(ROWS, 12)[0].astype(str)
    pol, phone, account = "保单号", "投保人手机", "缴费账号"
    n2 = pd.concat([n1.iloc[: ROWS // 2], other.iloc[: ROWS // 3].assign(**{pol: lambda f: "N2" + f[pol]})])
    n2.iloc[:10, n2.columns.get_loc(phone)] = n1[phone].iloc[100:110].to_numpy()  # night 2 raises shared phones with night 1's policies
    n3 = pd.concat([n2.iloc[40:], other.iloc[ROWS // 3: ROWS // 2].assign(**{pol: lambda f: "N3" + f[pol]})])
    wrong_same = other.assign(**{pol: n1[pol].to_numpy()})  # other customers under night 1's policy numbers
    wrong_new = other.assign(**{pol: "W" + other[pol]})
    corrected = make_sample(ROWS, 11, defect_rate=0.0)[0].astype(str)  # night 1 without its defects
    shared = other.iloc[:60].assign(**{pol: "S" + other[pol].iloc[:60], phone: n1[phone].iloc[:60].to_numpy(),
                                       account: n1[account].iloc[:60].to_numpy()})
    return {"n1": n1, "n2": n2, "n3": n3, "wrong_same": wrong_same, "wrong_new": wrong_new,
            "wrong_resolving": corrected, "wrong_shared": shared}


@pytest.fixture(scope="module")
def extracts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("extracts")
    out = {}
    for name, frame in _frames().items():
        out[name] = folder / f"{name}.csv"
        frame.to_csv(out[name], index=False, encoding="utf-8")
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param


def _store(backend: str, tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name / 'cases.db'}" if backend == "sqlite" else postgres_url()


def _run(invoke, db, extract: Path, date: str, out: Path, *extra: str):
    result = invoke("run", str(extract), "--business-date", date, "--db", db, "--out", str(out), "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return result


def _outputs(out: Path) -> dict:
    items, quarantine, manifest = read_outputs(out)
    return {"items": items.sort_values("item_id").reset_index(drop=True),
            "quarantine": quarantine, "items_counts": {k: v for k, v in manifest["items"].items()
                                                       if k != "run_events_taken_back"}}


def _same_outputs(a: dict, b: dict) -> None:
    pd.testing.assert_frame_equal(a["items"].drop(columns=["source_file"]), b["items"].drop(columns=["source_file"]))
    assert a["items"]["source_file"].map(lambda p: Path(p).name if p else p).tolist() == \
        b["items"]["source_file"].map(lambda p: Path(p).name if p else p).tolist()
    pd.testing.assert_frame_equal(a["quarantine"].drop(columns=["source_file"]),
                                  b["quarantine"].drop(columns=["source_file"]))
    assert a["items_counts"] == b["items_counts"]


@pytest.mark.parametrize("wrong", ["wrong_same", "wrong_new", "wrong_resolving", "wrong_shared"])
def test_a_re_run_after_a_wrong_file_ends_as_the_clean_sequence(invoke, tmp_path, extracts, backend, wrong):
    clean, dirty = _store(backend, tmp_path, "clean"), _store(backend, tmp_path, "dirty")
    for db, name in ((clean, "clean"), (dirty, "dirty")):
        _run(invoke, db, extracts["n1"], DATES[0], tmp_path / name / "n1")
    _run(invoke, dirty, extracts[wrong], DATES[1], tmp_path / "dirty" / "n2")  # the wrong file ...
    wrong_items = pd.read_csv(tmp_path / "dirty" / "n2" / "items.csv", dtype=str)
    for db, name in ((clean, "clean"), (dirty, "dirty")):  # ... then the right one
        _run(invoke, db, extracts["n2"], DATES[1], tmp_path / name / "n2")
    right_items = pd.read_csv(tmp_path / "clean" / "n2" / "items.csv", dtype=str)
    assert not wrong_items.equals(right_items)  # the wrong file really made another night
    assert differences(dump(clean), dump(dirty)) == []
    _same_outputs(_outputs(tmp_path / "clean" / "n2"), _outputs(tmp_path / "dirty" / "n2"))
    for db, name in ((clean, "clean"), (dirty, "dirty")):  # and the next night too
        _run(invoke, db, extracts["n3"], DATES[2], tmp_path / name / "n3")
    assert differences(dump(clean), dump(dirty)) == []
    _same_outputs(_outputs(tmp_path / "clean" / "n3"), _outputs(tmp_path / "dirty" / "n3"))


def test_an_older_night_is_refused_then_rewound(invoke, tmp_path, extracts, backend):
    clean, dirty = _store(backend, tmp_path, "clean"), _store(backend, tmp_path, "dirty")
    for date, name in zip(DATES, ["n1", "n2", "n3"]):
        _run(invoke, clean, extracts[name], date, tmp_path / "clean" / name)
    _run(invoke, dirty, extracts["n1"], DATES[0], tmp_path / "dirty" / "n1")
    _run(invoke, dirty, extracts["wrong_shared"], DATES[1], tmp_path / "dirty" / "n2")
    _run(invoke, dirty, extracts["n3"], DATES[2], tmp_path / "dirty" / "n3")
    before = dump(dirty)
    refused = invoke("run", str(extracts["n2"]), "--business-date", DATES[1], "--db", dirty, "--out",
                     str(tmp_path / "dirty" / "n2"), "--quiet")
    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [
        f"custdq: error: business date {DATES[1]} is earlier than the store's later night(s) {DATES[2]}; run it "
        "with --rewind to take that night back first (then run it again)"]
    assert differences(before, dump(dirty)) == []  # refused: nothing changed
    rewound = _run(invoke, dirty, extracts["n2"], DATES[1], tmp_path / "dirty" / "n2", "--rewind")
    assert f"warning: rewound night(s) {DATES[2]}: run them again, oldest first" in rewound.output
    _run(invoke, dirty, extracts["n3"], DATES[2], tmp_path / "dirty" / "n3")
    assert differences(dump(clean), dump(dirty)) == []
    _same_outputs(_outputs(tmp_path / "clean" / "n3"), _outputs(tmp_path / "dirty" / "n3"))
    listed = invoke("runs", "list", "--db", dirty)
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if DATES[2] in line.split(" ")[0:1] or
             line.startswith(DATES[2])]
    assert len(lines) == 2 and sum("rewound" in line for line in lines) == 1


def test_a_disposition_made_after_a_wrong_run_stands(invoke, tmp_path, extracts):
    """People come first: an item settled after the wrong run keeps its disposition when the
    night is re-run; only what its finding shows goes back."""
    from tests.helpers import fill

    db = _store("sqlite", tmp_path, "s")
    _run(invoke, db, extracts["n1"], DATES[0], tmp_path / "n1")
    _run(invoke, db, extracts["wrong_new"], DATES[1], tmp_path / "n2")
    items = pd.read_csv(tmp_path / "n2" / "items.csv", dtype=str)
    old = items[items["first_seen"] == DATES[0]].iloc[0]["item_id"]
    new = items[items["first_seen"] == DATES[1]].iloc[0]["item_id"]
    files = fill(tmp_path / "n2", {old: ("处理中", "", "已联系"), new: ("已完成", "核实无误", "家庭共用")},
                 tmp_path / "filled")
    assert invoke("cases", "import", *map(str, files), "--db", db, "--by", "王五").exit_code == 0
    # issue 32's work on them too: the review approves `new`, a lead assigns `old`, evidence on `old`
    assert approve_all(db, by="复核员") == 1
    engine = sa.create_engine(db)
    with engine.begin() as conn:
        stored = {k: python_value(v) for k, v in conn.execute(sa.select(items_table).where(
            items_table.c.item_id == old)).mappings().one().items()}
        assign(conn, stored, "赵六", "主管", "2026-11-24T09:00:00+08:00", "web")
        evidence.add(conn, stored, b"%PDF-1.4\n%%EOF\n", "说明.pdf", "赵六", "2026-11-24T09:05:00+08:00", 4096, 3,
                     evidence.key_of(b"a test key of thirty-two bytes!!"))
    _run(invoke, db, extracts["n2"], DATES[1], tmp_path / "n2")
    shown = invoke("cases", "show", new, "--db", db)
    assert shown.exit_code == 0 and "王五" in shown.output and "核实无误" in shown.output
    with engine.connect() as conn:
        after = {r.item_id: r for r in conn.execute(sa.select(items_table).where(items_table.c.item_id.in_([old, new])))}
        assert (after[new].state, after[new].close_reason) == ("closed", "legitimate")  # the review stands
        assert after[old].assignee == "赵六"  # the assignment stands
        assert conn.execute(sa.select(sa.func.count()).select_from(attachments).where(
            attachments.c.item_id == old)).scalar_one() == 1  # the evidence stands
        actions = set(conn.execute(sa.select(item_events.c.action).where(item_events.c.item_id.in_([old, new])))
                      .scalars())
        assert {"approved", "assigned", "attached"} <= actions
    engine.dispose()
    listed = json.loads((tmp_path / "n2" / "manifest.json").read_text(encoding="utf-8"))
    assert listed["items"]["run_events_taken_back"] > 0
