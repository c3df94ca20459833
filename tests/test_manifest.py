"""manifest.json against its published JSON Schema (docs/manifest.schema.json): the manifests of
real nights validate — a first night with a roster, the same night re-run, a later night with
a quarantined row and expectations off — and a manifest that gained or lost a field does not."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import read_outputs, row, write_csv

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "manifest.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def problems(manifest: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in VALIDATOR.iter_errors(manifest)]


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    from click.testing import CliRunner

    from pipeline.cli import cli

    tmp = tmp_path_factory.mktemp("nights")
    db = f"sqlite:///{tmp / 'cases.db'}"
    sample = Path(__file__).parent.parent / "data" / "samples"
    runner = CliRunner(env={"CUSTDQ_HASH_KEY": "custdq-test-key-0123456789abcdef0123456789"})
    later = write_csv(tmp / "n2.csv", [row(), row(policy_no="P0002", applicant_phone="13912345678"), row(policy_no="")])
    (tmp / "no-gx.yaml").write_text("expectations:\n  enabled: false\n", encoding="utf-8")
    found = {}
    for name, args in [
        ("first", ["run", str(sample / "policies_sample.csv"), "--business-date", "2026-11-20", "--agents",
                   str(sample / "agents_sample.csv")]),
        ("rerun", ["run", str(sample / "policies_sample.csv"), "--business-date", "2026-11-20"]),
        ("later", ["run", str(later), "--business-date", "2026-11-23", "--config", str(tmp / "no-gx.yaml")]),
    ]:
        out = tmp / name
        result = runner.invoke(cli, [*args, "--db", db, "--out", str(out), "--quiet"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        found[name] = read_outputs(out)[2]
    return found


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("night", ["first", "rerun", "later"])
def test_real_nights_validate(manifests, night):
    assert problems(manifests[night]) == []


def test_the_nights_are_the_cases_named(manifests):
    assert manifests["rerun"]["replaced_earlier_run"] is True
    assert manifests["later"]["expectations"] == {"enabled": False}
    assert manifests["later"]["rows"]["rows_quarantined"] == 1
    assert any(i["path"].endswith("agents_sample.csv") for i in manifests["first"]["inputs"])


def test_a_field_the_schema_does_not_know_or_a_missing_one_fails(manifests):
    extra = copy.deepcopy(manifests["first"])
    extra["surprise"] = 1
    assert any("surprise" in p for p in problems(extra))
    missing = copy.deepcopy(manifests["first"])
    del missing["rows"]["rows_quarantined"]
    assert any("rows_quarantined" in p for p in problems(missing))
    wrong = copy.deepcopy(manifests["first"])
    wrong["business_date"] = "20261120"
    assert problems(wrong)
