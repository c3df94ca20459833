"""`custdq index load --engine spark` (issue 16) in Spark's local mode: the same contact rows as
the local load, the same accounting and quarantine, and the night after it finds the same items.
The book is two files: the first repeats policy numbers far apart (different Spark tasks), the
second carries policies of the first file again (the first file's rows count)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import read_outputs
from tests.storedump import dump

pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'custdq[spark]')")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17 and no java is on PATH", allow_module_level=True)

INDEX_TABLES = ["index.contacts", "index.replaced", "index.seen", "index.versions"]


def test_spark_book_load_equals_the_local_load(invoke, tmp_path, extracts):  # noqa: F811
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("chunk_rows: 400\nspark: {master: 'local[2]'}\n", encoding="utf-8")
    stores, manifests = {}, {}
    for engine in ("local", "spark"):
        db = f"sqlite:///{tmp_path / engine / 'cases.db'}"
        out = tmp_path / engine / "load"
        result = invoke("index", "load", str(extracts / "n1.csv"), str(extracts / "n2.csv"), "--as-of", "2026-11-19",
                        "--db", db, "--out", str(out), "--config", str(cfg), "--engine", engine)
        assert result.exit_code == 0, result.output
        manifests[engine] = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        stores[engine] = db
    local, spark = manifests["local"], manifests["spark"]
    assert spark["engine"]["name"] == "spark" and spark["engine"]["tasks"] > 1 and local["engine"]["name"] == "local"
    assert local["contact_rows_written"] > 3000 and local["inputs"][1]["policies_in_earlier_file"] >= 299
    for key in ("rows_read", "contact_rows_written", "bulk_mode", "index"):
        assert local[key] == spark[key], key
    strip = [{k: v for k, v in i.items() if k != "path"} for i in local["inputs"]]
    assert strip == [{k: v for k, v in i.items() if k != "path"} for i in spark["inputs"]]
    assert (tmp_path / "local" / "load" / "quarantine.csv").read_bytes() == \
        (tmp_path / "spark" / "load" / "quarantine.csv").read_bytes()
    ours, theirs = dump(stores["local"]), dump(stores["spark"])
    for table in INDEX_TABLES:
        assert ours[table].equals(theirs[table]), table

    # the night after the load, on the local engine for both: the same items
    nights = {}
    for engine in ("local", "spark"):
        out = tmp_path / engine / "night"
        result = invoke("run", str(extracts / "n2.csv"), "--business-date", "2026-11-23", "--db", stores[engine],
                        "--out", str(out), "--quiet")
        assert result.exit_code == 0, result.output
        nights[engine] = read_outputs(out)[0]
    assert len(nights["local"]) > 50 and (nights["local"]["rule_code"] == "PHONE_SHARED").any()
    assert nights["local"].equals(nights["spark"])
