"""The gates `make test` runs keep their rules (issue 27, point 7): ruff runs flake8-bandit's
security rules (S), and every waiver of one says why on its own line: in the code a `noqa`
comment naming the rule, a dash and the reason; in pyproject.toml's per-file-ignores a comment
beside each rule."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOQA = re.compile(r"#\s*noqa:\s*([A-Z0-9, ]+)(.*)$")


def test_ruff_runs_the_security_rules():
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]["lint"]
    assert "S" in lint["select"]
    assert not [code for code in lint.get("ignore", []) if code.startswith("S")]  # waived where, not everywhere


def test_every_security_waiver_says_why():
    unexplained = []
    for folder in ("checks", "pipeline", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                found = NOQA.search(line)
                if found and any(c.strip().startswith("S") for c in found.group(1).split(",")):
                    why = found.group(2).strip()
                    if not why.startswith("- ") or len(why[2:].split()) < 2:
                        unexplained.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert unexplained == []


def test_every_per_file_waiver_says_why():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[tool.ruff.lint.per-file-ignores]", 1)[1].split("\n[", 1)[0]
    codes = re.findall(r'^\s*"(S\d+)",?(.*)$', section, re.M)
    assert codes  # the tests' and benchmarks' waivers are listed one a line
    assert [code for code, rest in codes if not re.match(r"\s*#\s*\S+\s+\S+", rest)] == []
    ignores = tomllib.loads(text)["tool"]["ruff"]["lint"]["per-file-ignores"]
    assert sum(len([c for c in v if c.startswith("S")]) for v in ignores.values()) == len(codes)
