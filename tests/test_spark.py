"""`custdq run --engine spark` (pipeline.spark) in Spark's local mode: on the same input, the
same items, quarantine, manifest figures, worklists and case store as the local engine, night
after night; the staging folder (it holds the extract's rows) is gone afterwards; a Spark that
cannot start is a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import read_outputs
from tests.helpers import VOLATILE, stable, store_items, worklist_cells

pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'custdq[spark]')")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17 and no java is on PATH", allow_module_level=True)


def _night(invoke, tmp_path: Path, name: str, extract: Path, date: str, engine: str, settings: str = "",
           agents: Path | None = None):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(settings or "{}\n", encoding="utf-8")
    out = tmp_path / name / date
    db = f"sqlite:///{tmp_path / name / 'cases.db'}"
    args = ["run", str(extract), "--business-date", date, "--out", str(out), "--db", db, "--config", str(cfg),
            "--engine", engine]
    if agents:
        args += ["--agents", str(agents)]
    result = invoke(*args)
    return out, db, result


def _same_night(a: Path, b: Path) -> None:
    items_a, quarantine_a, manifest_a = read_outputs(a)
    items_b, quarantine_b, manifest_b = read_outputs(b)
    assert len(items_a) > 50  # a night with something to find
    pd.testing.assert_frame_equal(items_a, items_b)
    pd.testing.assert_frame_equal(quarantine_a, quarantine_b)
    for key in manifest_a.keys() - VOLATILE - {"engine"}:
        assert stable(manifest_a[key]) == stable(manifest_b[key]), key
    assert stable(manifest_a["expectations"]["results"]) == stable(manifest_b["expectations"]["results"])
    assert worklist_cells(a) == worklist_cells(b)


def test_spark_nights_equal_the_local_engine(invoke, tmp_path, extracts):  # noqa: F811
    """Two nights (the second meets the first night's policies and values in the store, so the
    group-by runs over stored rows too); Spark at 400 rows a task."""
    staging = tmp_path / "staging"
    staging.mkdir()
    nights = {}
    for engine in ("local", "spark"):
        settings = f"chunk_rows: 400\nspark: {{staging: '{staging}', master: 'local[2]'}}\n"
        first, _, r1 = _night(invoke, tmp_path, engine, extracts / "n1.csv", "2026-11-20", engine, settings,
                              extracts / "agents-n1.csv")
        second, db, r2 = _night(invoke, tmp_path, engine, extracts / "n2.csv", "2026-11-23", engine, settings,
                                extracts / "agents-n1.csv")
        assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
        nights[engine] = (first, second, db)
    _same_night(nights["local"][0], nights["spark"][0])
    _same_night(nights["local"][1], nights["spark"][1])
    pd.testing.assert_frame_equal(store_items(nights["local"][2]), store_items(nights["spark"][2]))
    engine = json.loads((nights["spark"][1] / "manifest.json").read_text(encoding="utf-8"))["engine"]
    assert engine["name"] == "spark" and engine["master"] == "local[2]"
    assert engine["tasks"] >= 4  # really in pieces
    assert engine["executor_seconds"]["check"] > 0
    _, _, manifest = read_outputs(nights["spark"][1])
    assert manifest["contact_index"]["pool_rows"] > 0
    assert manifest["findings_per_rule"].get("PHONE_SHARED", 0) > 0
    assert list(staging.iterdir()) == []  # the staged rows are gone


def test_a_messy_file_and_an_empty_one_on_spark(invoke, tmp_path, extracts):  # noqa: F811
    """A line with too many fields near the end (the night is read again with the exact reader,
    its line quarantined) and a file of a header only: as the local engine."""
    lines = (extracts / "n2.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(len(lines) - 5, lines[-5].rstrip("\n") + ",extra,fields\n")
    bad = tmp_path / "late-problem.csv"
    bad.write_text("".join(lines), encoding="utf-8")
    local, _, r1 = _night(invoke, tmp_path, "bad-local", bad, "2026-11-20", "local", "chunk_rows: 300\n")
    spark, _, r2 = _night(invoke, tmp_path, "bad-spark", bad, "2026-11-20", "spark", "chunk_rows: 300\n")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    assert "reading the night again" in r2.output
    _same_night(local, spark)
    assert read_outputs(spark)[2]["inputs"][0]["malformed_rows"] == 1

    header = tmp_path / "header-only.csv"
    header.write_text(lines[0], encoding="utf-8")
    out, _, r3 = _night(invoke, tmp_path, "empty-spark", header, "2026-11-20", "spark")
    assert r3.exit_code == 0, r3.output
    items, _, manifest = read_outputs(out)
    assert len(items) == 0 and manifest["rows"]["rows_read"] == 0


def test_spark_that_cannot_start_is_a_clear_error(invoke, tmp_path, extracts):  # noqa: F811
    staging = tmp_path / "staging"
    staging.mkdir()
    _, _, result = _night(invoke, tmp_path, "bogus", extracts / "n1.csv", "2026-11-20", "spark",
                          f"spark: {{master: 'no-such-master', staging: '{staging}'}}\n")
    assert result.exit_code == 2
    assert "Spark did not start" in result.output and "Traceback" not in result.output
    assert list(staging.iterdir()) == []


def test_spark_without_pyspark_says_what_to_install(invoke, tmp_path, extracts, monkeypatch):  # noqa: F811
    import sys

    for name in [m for m in sys.modules if m == "pyspark" or m.startswith("pyspark.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    _, _, result = _night(invoke, tmp_path, "none", extracts / "n1.csv", "2026-11-20", "spark")
    assert result.exit_code == 2
    assert "custdq[spark]" in result.output


def test_failed_spark_tasks_are_one_line_and_keep_nothing(invoke, tmp_path, extracts, monkeypatch):  # noqa: F811
    """Executors that cannot run custdq (here: their Python cannot start, as on a cluster node
    set up wrong): exit 1, one line, no outputs, nothing staged left behind."""
    monkeypatch.delenv("CUSTDQ_DEBUG", raising=False)
    staging = tmp_path / "staging"
    staging.mkdir()
    out, _, result = _night(invoke, tmp_path, "broken", extracts / "n1.csv", "2026-11-20", "spark",
                            f"spark: {{staging: '{staging}', conf: {{spark.executorEnv.PYTHONHOME: /no/such/python}}}}\n")
    assert result.exit_code == 1, result.output
    assert "Spark failed checking the chunks" in result.output and "Traceback" not in result.output
    assert not (out / "manifest.json").exists()
    assert list(staging.iterdir()) == []
