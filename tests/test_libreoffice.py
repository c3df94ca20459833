"""Worklists through LibreOffice Calc (issue 15), the office suite of the teams on Linux and a
stand-in for the other suites that are not Excel (WPS): a real night's worklist printed to PDF the way Calc
prints it (A4 landscape, every column on one page wide, the header row on every page, the
footer with branch, business date and page number).

Runs LibreOffice headless (`soffice --convert-to`) with a private profile per test and a
timeout; reads PDFs with poppler's pdfinfo/pdftotext. Skipped, saying why, only when those
programs are not installed (.ci/run installs libreoffice-calc-nogui and poppler-utils).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import row, write_csv

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
pytestmark = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed: "
                                "apt-get install libreoffice-calc-nogui poppler-utils")
DATE = "2026-11-20"
BRANCH = "广东分公司"
TIMEOUT = 240  # seconds for one conversion (a first start with a fresh profile takes a few)


def soffice(tmp_path: Path, source: Path, target: str, outdir: Path) -> Path:
    """`soffice --headless --convert-to TARGET` of one file into `outdir`; returns the new file."""
    outdir.mkdir(parents=True, exist_ok=True)
    profile = tmp_path / "lo-profile"  # private: parallel runs never share a profile (or its lock)
    done = subprocess.run([SOFFICE, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
                           "--convert-to", target, "--outdir", str(outdir), str(source)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    made = outdir / (source.stem + "." + target.split(":")[0])
    assert done.returncode == 0 and made.exists(), (done.stdout, done.stderr)
    return made


def run_night(invoke, tmp_path: Path, rows: list[dict]) -> tuple[Path, str]:
    """A real `custdq run` of `rows` into tmp_path/out with its store in tmp_path/store."""
    db = f"sqlite:///{tmp_path / 'store' / 'cases.db'}"
    result = invoke("run", str(write_csv(tmp_path / "extract.csv", rows)), "--business-date", DATE,
                    "--out", str(tmp_path / "out"), "--quiet", "--db", db)
    assert result.exit_code == 0, result.output
    return tmp_path / "out", db


def faulty(n: int) -> list[dict]:
    """n policies, each with one or two findings (missing phone, placeholder phone, bad sex code)."""
    return [row(policy_no=f"P{i:04d}", applicant_phone=["", "13800138000", "13912345678"][i % 3],
                insured_sex="9" if i % 5 == 0 else "女") for i in range(n)]


@pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
                    reason="poppler-utils (pdftotext, pdfinfo) is not installed")
def test_a_printed_worklist_is_a4_landscape_one_page_wide_with_header_and_footer(invoke, tmp_path):
    out, _ = run_night(invoke, tmp_path, faulty(300))
    worklist = out / "worklists" / f"{BRANCH}.xlsx"
    pdf = soffice(tmp_path, worklist, "pdf", tmp_path / "pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())
    assert (round(width), round(height)) == (842, 595)  # A4 (297 x 210 mm), landscape
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 2  # 260 items: more than one page tall, and only one page wide
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout.split("\f")[:pages]
    assert len(text) == pages
    for n, page in enumerate(text, start=1):
        header_line = next(line for line in page.splitlines() if "问题件编号" in line)
        assert "处理说明" in header_line and "规则名称" in header_line  # the header row, first to last column
        assert f"问题件清单（{BRANCH}，业务日期 {DATE}）" in page  # the page header
        footer = page.strip().splitlines()[-1]
        assert BRANCH in footer and f"业务日期 {DATE}" in footer, footer
        assert re.search(rf"第\s*{n}\s*页\s*/\s*共\s*{pages}\s*页", footer), footer
    assert sum(page.count("DQ") for page in text) == 260  # every item printed once

