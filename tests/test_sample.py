"""`custdq sample`: reproducible, valid where no defect was injected, and the defects it
injects are found by the night."""

from __future__ import annotations

import pandas as pd
from stdnum.cn import ric

from checks.regions import county_codes
from pipeline.sample import make_sample
from tests.conftest import read_outputs, reconciles


def test_same_seed_same_file(invoke, tmp_path):
    for name in ("a.csv", "b.csv"):
        assert invoke("sample", "--rows", "300", "--seed", "7", "--out", str(tmp_path / name)).exit_code == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    invoke("sample", "--rows", "300", "--seed", "8", "--out", str(tmp_path / "c.csv"))
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_clean_sample_is_valid_and_realistic():
    frame, agents = make_sample(3000, seed=3, defect_rate=0.0)
    ids = pd.concat([frame["投保人证件号码"], frame["被保险人证件号码"]]).dropna()
    assert all(ric.calc_check_digit(i) == i[17] for i in ids)
    assert set(ids.str[:6]) <= set(county_codes())
    assert ids.str[:6].nunique() > 500  # many real GB/T 2260 codes
    assert frame["保单号"].is_unique
    assert frame["投保人证件号码"].nunique() < len(frame)  # repeat customers
    assert set(frame["投保人性别"]) == {"男", "女", "M", "F", "1", "2"}
    assert frame["投保人出生日期"].str.contains("/").any() and frame["投保人出生日期"].str.fullmatch(r"\d{8}").any()
    assert frame["投保人手机"].str.startswith("+86 ").any()
    assert {"本人", "子女"} <= set(frame["投被保人关系"])
    assert agents["业务员代码"].is_unique and set(frame["业务员代码"]) <= set(agents["业务员代码"])


def test_a_clean_sample_raises_no_false_alarm(invoke, tmp_path):
    path = tmp_path / "clean.csv"
    assert invoke("sample", "--rows", "2000", "--seed", "11", "--defect-rate", "0", "--out", str(path)).exit_code == 0
    out = tmp_path / "out"
    result = invoke("run", str(path), "--business-date", "2026-11-20", "--out", str(out), "--quiet")
    items, quarantine, manifest = read_outputs(out)
    assert result.exit_code == 0 and items.empty and quarantine.empty
    assert manifest["rows"]["rows_out_of_scope"] > 0 and reconciles(manifest)


def test_injected_defects_are_found(invoke, tmp_path):
    path = tmp_path / "gbk.csv"
    assert invoke("sample", "--rows", "3000", "--seed", "5", "--defect-rate", "0.2", "--encoding", "gbk",
                  "--out", str(path)).exit_code == 0
    out = tmp_path / "out"
    invoke("run", str(path), "--business-date", "2026-11-20", "--out", str(out), "--quiet")
    items, quarantine, manifest = read_outputs(out)
    assert manifest["inputs"][0]["encoding"] == "gb18030" and reconciles(manifest)
    assert {"MISSING_FIELD", "FIELD_INVALID", "DUPLICATE_POLICY"} <= set(items["rule_code"])
    assert len(quarantine) > 0


def test_sample_formats(invoke, tmp_path):
    for name in ("s.xlsx", "s.parquet"):
        assert invoke("sample", "--rows", "50", "--seed", "1", "--out", str(tmp_path / name)).exit_code == 0
        out = tmp_path / f"out-{name}"
        assert invoke("run", str(tmp_path / name), "--business-date", "2026-11-20", "--out", str(out),
                      "--quiet").exit_code == 0
        assert read_outputs(out)[2]["rows"]["rows_read"] == 50
    bad = invoke("sample", "--rows", "5", "--seed", "1", "--out", str(tmp_path / "s.json"))
    assert bad.exit_code == 2 and ".csv, .xlsx or .parquet" in bad.output
