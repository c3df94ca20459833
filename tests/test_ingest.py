"""Ingest through the CLI: encodings, XLSX and Parquet, headers, structural input errors."""

from __future__ import annotations


import pandas as pd
import pytest

from tests.helpers import chinese_headers, id_no, read_outputs, row, write_csv, write_xlsx

DATE = "2026-11-20"


def run(invoke, tmp_path, *files, extra=()):
    out = tmp_path / "out"
    result = invoke("run", *map(str, files), "--business-date", DATE, "--out", str(out), "--quiet", *extra)
    return result, out


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_each_encoding_reads_chinese_values(invoke, tmp_path, encoding):
    rows = [row(policy_no="P1", applicant_phone=None), row(policy_no="P2", applicant_name="欧阳娜娜", bank_account_holder="欧阳 娜娜")]
    path = write_csv(tmp_path / "extract.dat", rows, encoding=encoding, headers=chinese_headers())
    result, out = run(invoke, tmp_path, path)
    assert result.exit_code == 0, result.output
    items, _, manifest = read_outputs(out)
    assert manifest["inputs"][0]["encoding"] == {"gbk": "gb18030"}.get(encoding, encoding)
    assert manifest["rows"]["rows_in_scope"] == 2
    assert items[["policy_no", "field"]].values.tolist() == [["P1", "applicant_phone"]]
    assert items["detail"].tolist() == ["投保人电话缺失"]


def test_tab_delimited_gbk_with_title_row(invoke, tmp_path):
    path = tmp_path / "清单.txt"
    body = "保单清单 2026-11-20\n" + "\t".join(chinese_headers()[n] for n in row()) + "\n"
    body += "\t".join(str(v) for v in row(applicant_address="不详").values()) + "\n"
    path.write_bytes(body.encode("gbk"))
    result, out = run(invoke, tmp_path, path)
    assert result.exit_code == 0, result.output
    items, _, manifest = read_outputs(out)
    assert manifest["inputs"][0]["delimiter"] == "\t"
    assert items["field"].tolist() == ["applicant_address"]
    assert items["evidence"].tolist() == ["原值: 不详"]
    assert items["source_line"].tolist() == ["3"]


def test_values_stay_text(invoke, tmp_path):
    """Leading zeros and 18-digit numbers must not pass through a float."""
    rows = [row(policy_no="000123", applicant_id_no=None), row(policy_no="000124")]
    result, out = run(invoke, tmp_path, write_csv(tmp_path / "e.csv", rows))
    items, _, _ = read_outputs(out)
    assert items["policy_no"].tolist() == ["000123"]


def _patch_sheet_xml(path, old: str, new: str) -> None:
    """Rewrite a cell value inside the workbook's XML (openpyxl, like Excel, writes big integers
    as floats; other producers write every digit, and those digits must survive)."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    for name in parts:
        if name.startswith("xl/worksheets/"):
            parts[name] = parts[name].replace(old.encode(), new.encode())
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)


def test_xlsx_finds_the_header_sheet_and_keeps_numeric_ids(invoke, tmp_path):
    ident = id_no("44010619800517003")
    ident = ident if ident[-1] != "X" else id_no("44010619800517005")
    rows = [row(policy_no="X1", applicant_id_no=777001, insured_phone=13812345678.0),
            row(policy_no="X2", insured_birth_date="不详")]
    path = write_xlsx(tmp_path / "book.bin", rows, headers=chinese_headers(), title_rows=2, extra_first_sheet=True,
                      cell=lambda n, v: pd.Timestamp(v).to_pydatetime() if n == "issue_date" else v)
    _patch_sheet_xml(path, "<v>777001</v>", f"<v>{ident}</v>")
    result, out = run(invoke, tmp_path, path)
    assert result.exit_code == 0, result.output
    items, _, manifest = read_outputs(out)
    assert manifest["inputs"][0]["format"] == "xlsx" and manifest["inputs"][0]["sheet"] == "清单"
    assert items[["policy_no", "field", "source_line"]].values.tolist() == [["X2", "insured_birth_date", "5"]]
    from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
    from pipeline.ingest.xlsx import XlsxSource
    _, _, records = XlsxSource(path, alias_map(EXTRACT_COLUMNS)).open()
    line, cells, reason = next(records)
    assert (line, reason) == (4, None)
    assert ident in cells and "13812345678" in cells and "2026-11-18" in cells


def test_parquet_with_typed_columns(invoke, tmp_path):
    frame = pd.DataFrame([row(policy_no="Q1"), row(policy_no="Q2", applicant_sex="9")])
    frame["issue_date"] = pd.to_datetime(frame["issue_date"])
    frame["coverage_years"] = frame["coverage_years"].astype(float)
    frame["applicant_id_no"] = frame["applicant_id_no"].where(frame["applicant_id_no"].str[-1] != "X", "0")
    path = tmp_path / "night.parquet"
    frame.to_parquet(path)
    result, out = run(invoke, tmp_path, path)
    assert result.exit_code == 0, result.output
    items, _, manifest = read_outputs(out)
    assert manifest["inputs"][0]["format"] == "parquet"
    assert items[["policy_no", "rule_code", "field"]].values.tolist() == [["Q2", "FIELD_INVALID", "applicant_sex"]]


def test_config_adds_an_alias(invoke, tmp_path):
    rows = [row()]
    path = write_csv(tmp_path / "e.csv", rows, headers={"policy_no": "保单编码"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("aliases:\n  policy_no: [保单编码]\n", encoding="utf-8")
    result, _ = run(invoke, tmp_path, path)
    assert result.exit_code == 2 and "保单号" in result.output
    result, out = run(invoke, tmp_path, path, extra=("--config", str(cfg)))
    assert result.exit_code == 0, result.output
    assert read_outputs(out)[2]["rows"]["rows_in_scope"] == 1


def test_missing_required_column_is_one_line_exit_2(invoke, tmp_path):
    rows = [{k: v for k, v in row().items() if k not in ("applicant_phone", "relation")}]
    path = write_csv(tmp_path / "e.csv", rows)
    result, out = run(invoke, tmp_path, path)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "e.csv" in lines[0] and "applicant_phone (投保人电话 / 投保人手机 / 投保人联系电话)" in lines[0] and "relation" in lines[0]
    assert not (out / "manifest.json").exists()


def test_optional_columns_may_be_absent(invoke, tmp_path):
    optional = ("receipt_date", "product_code", "coverage_years", "insured_phone", "bank_account_holder")
    rows = [{k: v for k, v in row().items() if k not in optional}]
    result, out = run(invoke, tmp_path, write_csv(tmp_path / "e.csv", rows))
    assert result.exit_code == 0, result.output
    manifest = read_outputs(out)[2]
    assert sorted(manifest["optional_columns_absent"]) == sorted(optional)
    assert manifest["rows"]["rows_in_scope"] == 1


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100), "legacy .xls"),
    (lambda p: p.write_bytes(b"PK\x03\x04garbage"), "not a readable XLSX"),
    (lambda p: p.write_bytes(b"PAR1garbage"), "not a readable Parquet"),
    (lambda p: p.write_text("a,b,c\n1,2,3\n", encoding="utf-8"), "no header row"),
    (lambda p: p.write_text("保单号,保险单号,投保人姓名\n1,2,3\n", encoding="utf-8"), "both mean policy_no"),
])
def test_structural_problems_exit_2_naming_the_file(invoke, tmp_path, make, message):
    path = tmp_path / "bad.csv"
    make(path)
    result, _ = run(invoke, tmp_path, path)
    assert result.exit_code == 2
    assert message in result.output and str(path) in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_malformed_lines_are_quarantined_with_their_line(invoke, tmp_path):
    names = list(row())
    good = [str(v) for v in row(policy_no="G1", applicant_address="多行\n地址").values()]
    lines = [",".join(names)]
    lines.append(",".join(f'"{v}"' for v in good))                 # lines 2-3: quoted newline
    lines.append(",".join(str(v) for v in row(policy_no="B1").values()) + ",extra")   # line 4: too many
    lines.append(",".join(str(v) for v in list(row(policy_no="B2").values())[:5]))  # line 5: too few
    lines.append("")                                                   # line 6: blank
    lines.append(",".join(str(v) for v in row(policy_no="G2").values()) + ",,")      # line 7: trailing commas
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    raw += ",".join(str(v) for v in row(policy_no="B3").values()).encode("utf-8").replace("张三".encode(), b"\xff\xfe") + b"\n"
    path = tmp_path / "e.csv"
    path.write_bytes(raw)
    result, out = run(invoke, tmp_path, path)
    assert result.exit_code == 0, result.output
    _, quarantine, manifest = read_outputs(out)
    assert quarantine["line"].tolist() == ["4", "5", "8"]
    assert "25 fields where the header has 24" in quarantine["reason"][0]
    assert "not utf-8 text" in quarantine["reason"][2]
    assert manifest["rows"] == {"rows_read": 5, "rows_in_scope": 2, "rows_out_of_scope": 0, "rows_quarantined": 3}
    assert manifest["rows_blank_skipped"] == 1


def test_full_width_header_punctuation_and_invisible_characters(invoke, tmp_path):
    """Chinese spreadsheets write 保险期间（年） with full-width parentheses; values may carry
    zero-width spaces or NULs that a person cannot see."""
    headers = chinese_headers() | {"coverage_years": "保险期间（年）", "policy_no": " 保单号\u3000"}
    rows = [row(policy_no="F1", coverage_years="0.5"), row(policy_no="F2", applicant_name="\u200b\x00")]
    result, out = run(invoke, tmp_path, write_csv(tmp_path / "e.csv", rows, encoding="gb18030", headers=headers))
    assert result.exit_code == 0, result.output
    items, _, manifest = read_outputs(out)
    assert manifest["rows"]["rows_out_of_scope"] == 1 and manifest["inputs"][0]["columns_carried"] == []
    assert items[["policy_no", "field"]].values.tolist() == [["F2", "applicant_name"]]


def test_a_personal_number_in_an_identifying_column_quarantines_its_row(invoke, tmp_path):
    """Issue 27: a shifted export puts an identity number, a mobile or a card where the policy
    number, branch, channel or agent code belong; those are stored and shown as they are, so the
    row is quarantined naming the column and the form, and the value is found nowhere after."""
    person = id_no("11010519491231002")
    rows = [row(policy_no="P2026000001255"),  # a policy number with a long digit run is a code
            row(policy_no=person[:6] + " " + person[6:]),  # separators do not hide the form
            row(policy_no="P2", branch="138-1234-5678"),
            row(policy_no="P3", agent_code="6222021234567890128"),
            row(policy_no="P4", channel="+86 139 1234 5678"),
            row(policy_no="P5", agent_code="6222021234567890129"),  # Luhn fails: a code
            row(policy_no="P6", branch="11010519491231002"),  # 17 digits: no identity number
            row(policy_no="P7", branch="110000202611200001")]  # wrong check character: a code
    path = write_csv(tmp_path / "e.csv", rows)
    result, out = run(invoke, tmp_path, path)
    assert result.exit_code == 0, result.output
    items, quarantine, manifest = read_outputs(out)
    assert manifest["rows"]["rows_quarantined"] == 4 and manifest["rows"]["rows_in_scope"] == 4
    reasons = dict(zip(quarantine["line"], quarantine["reason"]))
    assert reasons["3"].startswith("policy_no (保单号) has the form of a resident identity number")
    assert reasons["4"].startswith("branch (") and "mobile number" in reasons["4"]
    assert "agent_code" in reasons["5"] and "bank card" in reasons["5"]
    assert reasons["6"].startswith("channel (") and "mobile number" in reasons["6"]
    assert quarantine["policy_no"].tolist() == ["", "P2", "P3", "P4"]  # never the personal number
    assert set(items["policy_no"]) <= {"P2026000001255", "P5", "P6", "P7"}
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json", ".html"):
            text = path.read_text(encoding="utf-8")
            assert person not in text and "13812345678" not in text and "6222021234567890128" not in text, path
    assert not any("138" in p.name for p in (out / "worklists").glob("*.xlsx"))
    # the operator is told, without -v, with what to do if these are codes
    assert "warning: 1 row quarantined, not checked: policy_no (保单号) has the form of a resident identity " \
           "number" in result.output and "scope.identifier_guard" in result.output


def test_all_digit_policy_numbers_are_codes_not_personal_numbers(invoke, tmp_path):
    """Review of issue 27: one 16-digit number in ten is Luhn-valid and one 18-digit branch+date+
    sequence number in eleven has a right check character; a column of such codes is not
    quarantined in bulk. A card of another length and a phone among them still are."""
    rows = [row(policy_no=f"8866{n * 7919 + 12345:012d}", applicant_phone=f"139{n:08d}") for n in range(150)]
    rows += [row(policy_no=f"440106202611{n % 28 + 1:02d}{n:04d}", applicant_phone=f"137{n:08d}") for n in range(150)]
    rows += [row(policy_no="6222021234567890128"), row(policy_no="P9", branch="13812345678")]
    result, out = run(invoke, tmp_path, write_csv(tmp_path / "e.csv", rows))
    assert result.exit_code == 0, result.output
    _, quarantine, manifest = read_outputs(out)
    assert manifest["rows"]["rows_quarantined"] == 2, quarantine["reason"].tolist()
    assert sorted(quarantine["line"].astype(int)) == [302, 303]


def test_the_identifier_guard_can_be_narrowed_and_refuses_an_unknown_column(invoke, tmp_path):
    path = write_csv(tmp_path / "e.csv", [row(policy_no="6222021234567890128")])
    config = tmp_path / "c.yaml"
    config.write_text("scope:\n  identifier_guard: [branch, channel, agent_code]\n", encoding="utf-8")
    result, out = run(invoke, tmp_path, path, extra=("--config", str(config)))
    assert result.exit_code == 0, result.output
    assert read_outputs(out)[2]["rows"]["rows_in_scope"] == 1  # the insurer's cards-as-policy-numbers
    config.write_text("scope:\n  identifier_guard: [applicant_name]\n", encoding="utf-8")
    result, _ = run(invoke, tmp_path, path, extra=("--config", str(config)))
    assert result.exit_code == 2 and "scope.identifier_guard" in result.output, result.output
