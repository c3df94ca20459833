"""The typed settings (pipeline/settings.py): every key of default_config.yaml is in the model and
the other way round, the defaults validate, and a bad value is exit 2 with one line naming the
file and the dotted key, before any store, key or lock is made."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
from click.testing import CliRunner

from pipeline import settings
from pipeline.cli import cli
from pipeline.errors import ConfigError

CUSTDQ = Path(sys.executable).with_name("custdq")


def _keys_match(model: type[pydantic.BaseModel], yaml: dict, where: str = "") -> list[str]:
    """The dotted keys the YAML and the model do not share (the OPEN sections' own keys aside)."""
    fields = model.model_fields
    wrong = [f"{where}{k} (YAML only)" for k in yaml if k not in fields]
    wrong += [f"{where}{k} (model only)" for k in fields if k not in yaml]
    for key, info in fields.items():
        sub = info.annotation
        if key in yaml and key not in settings.OPEN and isinstance(sub, type) and issubclass(sub, settings.Section):
            wrong += _keys_match(sub, yaml[key], f"{where}{key}.")
    return wrong


def test_every_key_of_the_defaults_is_in_the_model_and_the_other_way_round():
    assert _keys_match(settings.Settings, settings.defaults()) == []


def test_the_defaults_validate_and_the_accessors_read_them():
    s = settings.load()
    defaults = settings.defaults()
    assert s.store.lock_wait_seconds == defaults["store"]["lock_wait_seconds"] and s.lock_wait == 3600.0
    assert s.web.session_idle_seconds == defaults["web"]["session_idle_minutes"] * 60
    assert s.expectations.value_sets["sex"][0] == "男" and s.expectations.rule_failure_pct["default"] == 20.0
    assert s.retention.closed_items_days.false_information == 3653
    assert s.worker_processes >= 1 and s.contact_index.thread_count >= 1


def test_the_settings_are_frozen_hashable_and_pickle():
    s = settings.from_mapping({"calendar": {"years": {2027: {"source": "国办发明电", "holidays": ["2027-01-01"]}}},
                               "spark": {"conf": {"spark.executor.memory": "8g"}}})
    again = pickle.loads(pickle.dumps(s))  # noqa: S301 - the settings this test pickled itself
    assert again == s and hash(again) == hash(s) and again.calendar.years[2027].holidays[0].isoformat() == "2027-01-01"
    with pytest.raises(pydantic.ValidationError):
        s.store.undo_nights = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.rules.severity["PHONE_SHARED"] = "error"  # type: ignore[index]
    assert {s: 1}[again] == 1


def test_a_partial_mapping_merges_like_a_file():
    s = settings.from_mapping({"store": {"undo_nights": 3}, "rules": {"severity": {"PHONE_SHARED": "error"}}})
    assert s.store.undo_nights == 3 and s.store.lock_wait_seconds == 3600  # the rest of the section kept
    assert s.rules.severity == {"PHONE_SHARED": "error"}


def test_settings_are_read_as_attributes_only():
    """No item access survives the move from the nested dict: a reader of `cfg["store"]` fails loudly."""
    s = settings.load()
    with pytest.raises(TypeError):
        s["store"]  # noqa: B018 - the access is the test
    assert not hasattr(s.store, "get")


@pytest.mark.parametrize("text, says", [
    ("chunk_rows: true\n", "chunk_rows: must be a whole number of rows, at least 1 (got True)"),
    ("chunk_rows: '10'\n", "chunk_rows: must be a whole number of rows, at least 1 (got '10')"),
    ("store:\n  lock_wait_seconds: true\n", "store.lock_wait_seconds: must be a number >= 0 (got True)"),
    ("store:\n  lock_wait_seconds: '10'\n", "store.lock_wait_seconds: must be a number >= 0 (got '10')"),
    ("web:\n  https_only: 'yes'\n", "web.https_only: must be true or false (got 'yes')"),
    ("id_card_types: [01]\n", "id_card_types: must be a list of text values"),  # YAML reads 01 as the number 1
    ("expectations:\n  null_rates:\n    branch: .nan\n", "expectations.null_rates.branch: must be a share 0..1"),
])
def test_a_value_of_the_wrong_kind_is_refused(tmp_path, text, says):
    path = tmp_path / "strict.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        settings.load(path)
    assert str(refused.value).startswith(f"{path}: {says}"), str(refused.value)


def test_an_unknown_key_is_refused_and_a_retired_one_ignored(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("store:\n  lock_wait_second: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown setting 'store.lock_wait_second'"):
        settings.load(path)
    path.write_text("calendar:\n  years:\n    2027:\n      source: x\n      holiday: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown setting 'calendar.years.2027.holiday'"):
        settings.load(path)
    path.write_text("contact_index:\n  recent_rows_warning: 5\n  auto_compact: true\n", encoding="utf-8")
    assert settings.load(path) == settings.load()


def test_a_blank_optional_setting_is_null_and_a_quoted_year_a_year(tmp_path):
    """The defaults' comments say "Empty: ..." for the optional paths; a YAML key may quote a year."""
    path = tmp_path / "c.yaml"
    path.write_text("hash_key_file: ''\nspark:\n  staging: ' '\n  master: ''\nstore:\n  url: ''\n"
                    "contact_index:\n  path: ''\n  temp_directory: ''\n"
                    "calendar:\n  years:\n    '2027':\n      source: x\n      holidays: ['2027-01-01']\n",
                    encoding="utf-8")
    s = settings.load(path)
    assert s.hash_key_file is None and s.spark.staging is None and s.spark.master is None and s.store.url is None
    assert s.contact_index.path is None and s.contact_index.temp_directory is None
    assert list(s.calendar.years) == [2027] and s.calendar.years[2027].holidays[0].isoformat() == "2027-01-01"


# a bad value of a representative key of each section, and what the one line says after the key
BAD = [
    ("aliases:\n  policy_no: 保单号码\n", "aliases.policy_no", "must be a list of text values"),
    ("placeholders: 空\n", "placeholders", "must be a list of text values"),
    ("phone_placeholders:\n  numbers: [13800138000]\n", "phone_placeholders.numbers", "must be a list of numbers"),
    ("scope:\n  identifier_guard: [applicant_name]\n", "scope.identifier_guard", "must be a list of columns among"),
    ("scope:\n  min_coverage_years: -1\n", "scope.min_coverage_years", "must be a number >= 0"),
    ("minor_age: 18.5\n", "minor_age", "must be a whole number of years 0..150"),
    ("deadlines:\n  cooling_off_days: -1\n", "deadlines.cooling_off_days", "must be a whole number of days"),
    ("calendar:\n  years:\n    2027:\n      source: x\n      holidays: ['2027-02-30']\n",
     "calendar.years.2027.holidays.0", "must be a real date"),
    ("calendar:\n  years:\n    2027:\n      source: x\n      holidays: [2028-01-01]\n",
     "calendar.years", "2028-01-01 is not in 2027"),
    ("rules:\n  severity:\n    PHONE_SHARED: fatal\n", "rules.severity.PHONE_SHARED", "must be error or warning"),
    ("rules:\n  disabled: [PHONE_SHARD]\n", "rules.disabled", "unknown rule code PHONE_SHARD"),
    ("hash_key_file: [a, b]\n", "hash_key_file", "must be null or a path"),
    ("rules:\n  severity:\n    default: error\n", "rules.severity", "unknown rule code default"),
    ("expectations:\n  blocking: [null_rate:nonsense]\n", "expectations", "null_rate:nonsense names no expectation"),
    ("expectations:\n  blocking: [rule_failure:NOPE]\n", "expectations", "NOPE is not in the rule catalogue"),
    ("chunk_rows: 0\n", "chunk_rows", "must be a whole number of rows, at least 1"),
    ("workers: 0\n", "workers", "must be a whole number of processes, at least 1, or null"),
    ("spark:\n  conf:\n    spark.executor.memory: [8g]\n", "spark.conf.spark.executor.memory", "must be a text"),
    ("contact_index:\n  memory_limit: lots\n", "contact_index.memory_limit", "must be a size such as 256MB"),
    ("contact_index:\n  threads: 0\n", "contact_index.threads", "must be a whole number of threads"),
    ("retention:\n  closed_items_days:\n    corrected: 0\n", "retention.closed_items_days.corrected",
     "must be a whole number of days, at least 1"),
    ("store:\n  lock_wait_seconds: soon\n", "store.lock_wait_seconds", "must be a number >= 0 (got 'soon')"),
    ("store:\n  undo_nights: 0\n", "store.undo_nights", "must be a whole number of nights, at least 1"),
    ("expectations:\n  volume:\n    min_ratio: 3\n", "expectations.volume", "min_ratio (3) is above max_ratio (2)"),
    ("expectations:\n  volume:\n    max_ratio: 0\n", "expectations.volume.max_ratio", "must be a number > 0"),
    ("expectations:\n  rule_failure_pct:\n    default: 120\n", "expectations.rule_failure_pct.default",
     "must be a percentage 0..100"),
    ("expectations:\n  blocking: [volum]\n", "expectations.blocking", "must be a list of expectation names"),
    ("web:\n  port: 0\n", "web.port", "must be a whole number 1..65535 (got 0)"),
    ("web:\n  trusted_proxies: [proxy.example]\n", "web.trusted_proxies", "is not an IP address or network"),
]


@pytest.mark.parametrize("text, key, says", BAD, ids=[b[1] for b in BAD])
def test_a_bad_value_is_exit_2_in_one_line_before_any_store(tmp_path, monkeypatch, text, key, says):
    """Through the real `custdq run` (click, in this process): nothing is created, not even the
    default store's folder or the output folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUSTDQ_DB", raising=False)
    monkeypatch.setenv("CUSTDQ_HASH_KEY", "custdq-test-key-0123456789abcdef0123456789")
    (tmp_path / "e.csv").write_text("policy_no\nP1\n", encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(cli, ["run", "e.csv", "--business-date", "2026-11-20", "--config", "bad.yaml",
                                      "--quiet"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert line.startswith(f"custdq: error: bad.yaml: {key}: ") and says in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .custdq, no store, no out/


def test_the_installed_command_refuses_a_bad_value_in_one_line(tmp_path):
    (tmp_path / "e.csv").write_text("policy_no\nP1\n", encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("store:\n  lock_wait_seconds: soon\n", encoding="utf-8")
    env = {"PATH": str(CUSTDQ.parent), "HOME": str(tmp_path), "CUSTDQ_HASH_KEY": "k" * 40}
    done = subprocess.run([str(CUSTDQ), "run", "e.csv", "--business-date", "2026-11-20", "--config", "bad.yaml"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("custdq: error: bad.yaml: store.lock_wait_seconds: must be a number >= 0 "
                                   "(got 'soon')"), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "e.csv"]
