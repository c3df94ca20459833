"""`custdq sample`: reproducible, valid where no defect was injected, and the defects it
injects are found by the night; `--after` makes a believable later night (new numbers that never
collide, recurring customers, re-sent policies changed or corrected) that the case store follows."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from stdnum.cn import ric

from checks.regions import county_codes
from pipeline.sample import make_sample
from tests.helpers import read_outputs, reconciles


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


# --- later nights (--after) -----------------------------------------------------------------

from pipeline.sample import write_sample  # noqa: E402
from pipeline.sample.later import APPLICANT, CORRECTABLE, INSURED, flaws, read_earlier  # noqa: E402

D2, D3 = dt.date(2026, 11, 23), dt.date(2026, 11, 24)


def _night(tmp_path, name, rows, seed, after=(), date=D2, **kw):
    """Write a night in-process; (its policies as read back, the counts written)."""
    path = str(tmp_path / name)
    shares = {k: kw.pop(k) for k in ("recurring", "resend", "changed", "corrected") if k in kw}
    info = write_sample(rows, seed, path, after=[str(tmp_path / a) for a in after], business_date=date,
                        shares=shares, **kw)
    return read_earlier([path]), info


def _rows(path) -> pd.DataFrame:
    from pipeline.ingest import read_extract
    from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
    frame = read_extract([path], alias_map(EXTRACT_COLUMNS)).frame.drop(columns=["_file", "_line"])
    return frame.where(frame != "")  # an empty CSV cell is missing


def test_later_night_is_deterministic(invoke, tmp_path):
    assert invoke("sample", "--rows", "400", "--seed", "7", "--out", str(tmp_path / "n1.csv")).exit_code == 0
    later = ["--after", str(tmp_path / "n1.csv"), "--business-date", "2026-11-23"]
    for name, seed in (("a.csv", "8"), ("b.csv", "8"), ("c.csv", "9")):
        result = invoke("sample", "--rows", "400", "--seed", seed, "--out", str(tmp_path / name), *later)
        assert result.exit_code == 0 and "re-sent" in result.output
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    assert (tmp_path / "a.csv").read_text().splitlines()[0] == (tmp_path / "n1.csv").read_text().splitlines()[0]
    bad = invoke("sample", "--rows", "5", "--seed", "1", "--out", str(tmp_path / "d.csv"), "--after",
                 str(tmp_path / "n1.csv"))
    assert bad.exit_code == 2 and "--business-date" in bad.output


def test_new_policy_numbers_never_collide(tmp_path):
    n1, _ = _night(tmp_path, "n1.csv", 3000, 1, date=dt.date(2026, 11, 20))
    n2, i2 = _night(tmp_path, "n2.csv", 3000, 2, ["n1.csv"], D2)
    n3, i3 = _night(tmp_path, "n3.csv", 3000, 3, ["n1.csv", "n2.csv"], D3)
    again, i4 = _night(tmp_path, "n2b.csv", 3000, 4, ["n1.csv", "n2.csv"], D2)  # a second extract of 11-23
    lone, _ = _night(tmp_path, "n3b.csv", 3000, 5, ["n1.csv"], D3 + dt.timedelta(days=1))  # night 2 not given
    book = set(n1["policy_no"])
    assert len(set(n2["policy_no"]) & book) == i2["resent"] == 150
    book |= set(n2["policy_no"])
    assert len(set(n3["policy_no"]) & book) == i3["resent"]
    assert len(set(again["policy_no"]) & book) == i4["resent"]
    assert not set(lone["policy_no"]) & (set(n2["policy_no"]) - set(n1["policy_no"]))
    new2 = n2["policy_no"][~n2["policy_no"].isin(list(n1["policy_no"]))]
    assert new2.str.fullmatch(r"P20261123[0-9]{7}").all()
    new4 = set(again["policy_no"]) - book
    assert min(new4) > max(new2)  # continues after the night with the same business date


def test_recurring_customers_keep_identity_and_contacts(tmp_path):
    n1, _ = _night(tmp_path, "n1.csv", 3000, 1, date=dt.date(2026, 11, 20), defect_rate=0.0)
    n2, info = _night(tmp_path, "n2.csv", 3000, 2, ["n1.csv"], defect_rate=0.0, recurring=0.2)
    new = n2[~n2["policy_no"].isin(list(n1["policy_no"]))]
    known = new[new["applicant_id_no"].isin(list(n1["applicant_id_no"]))]
    assert info["recurring"] == len(known) and 0.15 < len(known) / len(new) < 0.25
    earlier = set(map(tuple, n1[APPLICANT].fillna("").to_numpy()))
    assert all(t in earlier for t in map(tuple, known[APPLICANT].fillna("").to_numpy()))
    pairs = set(map(tuple, n1[["applicant_id_no"] + INSURED].fillna("").to_numpy()))
    same_insured = [t in pairs for t in map(tuple, known[["applicant_id_no"] + INSURED].fillna("").to_numpy())]
    assert 0.3 < sum(same_insured) / len(known) < 0.8
    self_rows = known[known["relation"].eq("本人") & known["insured_name"].notna()]
    assert (self_rows["insured_id_no"] == self_rows["applicant_id_no"]).all() and len(self_rows)
    dates = pd.to_datetime(new["issue_date"])
    assert dates.between("2026-11-16", "2026-11-23").all()


def test_resent_policies_equal_earlier_rows_except_intended_changes(tmp_path):
    _night(tmp_path, "n1.parquet", 3000, 1, date=dt.date(2026, 11, 20), defect_rate=0.2)
    n1 = read_earlier([str(tmp_path / "n1.parquet")])
    _, info = _night(tmp_path, "n2.csv", 3000, 2, ["n1.parquet"], resend=0.1, changed=0.4, corrected=0.4)
    n2 = _rows(str(tmp_path / "n2.csv"))
    again = n2[n2["policy_no"].isin(list(n1["policy_no"]))].set_index("policy_no").sort_index()
    before = n1.set_index("policy_no").loc[again.index]
    assert len(again) == info["resent"] == 300 and again.index.is_unique
    differs = (again.fillna("\0") != before.fillna("\0"))
    assert not differs.drop(columns=CORRECTABLE).any().any()  # the rest of each row as it was
    changed = differs.any(axis=1)
    only = lambda c: (differs[c] & (differs.sum(axis=1) == 1)).sum()  # noqa: E731
    assert changed.sum() == info["corrected"] + info["changed_phone"] + info["changed_account"]
    assert (~changed).sum() == 300 - 120 - 120 and info["corrected"] == 120
    assert only("applicant_phone") >= info["changed_phone"] == 60 and only("bank_account") >= 60
    # every defect this module can see on the corrected rows is gone
    # (judged in the book as the contact index holds it: night 1 with the re-sent versions replacing theirs)
    resent = n1["policy_no"].isin(list(again.index))
    book = pd.concat([n1[~resent], again.reset_index()[list(n1.columns)]], ignore_index=True)
    fixable_before = flaws(n1)["fixable"][resent].sum()
    fixable_after = flaws(book)["fixable"].iloc[(~resent).sum():].sum()
    assert fixable_before - fixable_after >= info["corrected"]
    assert differs.drop(columns=["applicant_phone", "bank_account"]).any(axis=1).sum() > 50


def test_later_night_formats(tmp_path):
    _night(tmp_path, "n1.xlsx", 200, 1, date=dt.date(2026, 11, 20))
    n1 = read_earlier([str(tmp_path / "n1.xlsx")])
    for name, kw in (("n2.parquet", {}), ("n2.csv", {"encoding": "gbk"}), ("n2.xlsx", {})):
        _, info = _night(tmp_path, name, 200, 2, ["n1.xlsx"], resend=0.2, changed=0.0, corrected=0.0, **kw)
        n2 = _rows(str(tmp_path / name))
        assert len(n2) == 200 and info["rows"] == 200
        same = n2.merge(n1, how="inner")  # rows equal in every column, values as text
        assert len(same) == info["resent"] == 40


def test_two_nights_end_to_end(invoke, tmp_path):
    n1, n2 = tmp_path / "n1.csv", tmp_path / "n2.csv"
    assert invoke("sample", "--rows", "1500", "--seed", "21", "--out", str(n1)).exit_code == 0
    assert invoke("sample", "--rows", "1500", "--seed", "22", "--out", str(n2), "--after", str(n1),
                  "--business-date", "2026-11-23", "--recurring", "0.15").exit_code == 0
    for path, date in ((n1, "2026-11-20"), (n2, "2026-11-23")):
        result = invoke("run", str(path), "--business-date", date, "--out", str(tmp_path / date), "--quiet")
        assert result.exit_code == 0, result.output
    items, _, manifest = read_outputs(tmp_path / "2026-11-23")
    counts = manifest["items"]
    assert counts["resolved"] > 0 and counts["carried"] > 0 and counts["new"] > 0, counts
    # recurring customers: a new policy whose applicant (number and phone) is a night-1 customer's
    first, later = _rows(str(n1)), _rows(str(n2))
    first["phone"], later["phone"] = (f["applicant_phone"].str.replace(r"\D", "", regex=True).str[-11:]
                                      for f in (first, later))
    seen = set(zip(first["applicant_id_no"], first["phone"]))
    new = later[~later["policy_no"].isin(list(first["policy_no"]))]
    recurring = new[[k in seen for k in zip(new["applicant_id_no"], new["phone"])]]
    holders = pd.concat([
        pd.DataFrame({"phone": f["phone"], "who": f["applicant_id_no"]}) for f in (first, later)] + [
        pd.DataFrame({"phone": f["insured_phone"].str.replace(r"\D", "", regex=True).str[-11:],
                      "who": f["insured_id_no"].fillna(f["policy_no"])}) for f in (first, later)]).dropna()
    owners = holders.drop_duplicates().groupby("phone")["who"].nunique()
    alone = recurring[recurring["phone"].map(owners).eq(1).to_numpy()]
    assert len(alone) > 100
    shared = items[items["rule_code"] == "PHONE_SHARED"]
    assert not set(shared["policy_no"]) & set(alone["policy_no"])
    own_earlier = first[first["phone"].isin(list(alone["phone"]))]["policy_no"]
    raised = shared[shared["first_seen"] == "2026-11-23"]
    assert len(own_earlier) and not set(raised["policy_no"]) & set(own_earlier)
    assert len(raised)  # other customers' shared phones are still raised
