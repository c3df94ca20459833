"""The expectations gate in its own process (pipeline.night.gatehost): a real host process
judges the night's figures exactly as the gate in the night's process does, writes the same
Data Docs, ends when the night closes it without a job, and answers None (the night then runs
the gate itself) when the gate fails there. That it dies with a killed night is
tests/test_killed_night.py's (every process below the night is gone 2 s after the kill)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import pytest

from pipeline import settings
from pipeline.night import gatehost
from pipeline.night.expectations import aggregates, run_gate
from tests.helpers import settings_with


@dataclass
class Outcome:
    rule_code: str
    status: str = "ok"
    percent_failed: float = 1.5


def _inputs(rows: int = 1000, duplicates: int = 1):
    cfg = settings.load().expectations
    seen = {"rows": rows, "nulls": {"applicant_phone": 3, "branch": 0},
            "values": {"sex": {"M", "F", "X"}, "id_type": {"身份证"}, "channel": {"个险", "银保"}}}
    counts = {"rows_read": rows, "rows_in_scope": rows}
    figures, distinct, reference = aggregates(seen, duplicates, counts, [Outcome("ID_BIRTH_MISMATCH")],
                                              [{"rows_read": 900}, {"rows_read": 1100}], cfg)
    return figures, distinct, reference, cfg


def _plain(result) -> dict:
    out = result.to_dict()
    out.pop("seconds")
    return out


def test_the_host_judges_as_the_night_would(tmp_path):
    figures, distinct, reference, cfg = _inputs()
    host = gatehost.GateHost()
    try:
        assert host.send(figures, distinct, reference, cfg, str(tmp_path / "host"))
        there = host.result()
    finally:
        host.close()
    here = run_gate(figures, distinct, reference, cfg, tmp_path / "here")
    assert there is not None
    assert _plain(there) == _plain(here)
    assert there.results and any(not r["success"] for r in there.results)  # the repeated policy number
    assert (tmp_path / "host" / "data_docs" / "index.html").is_file()
    assert sorted(p.name for p in (tmp_path / "host" / "data_docs").iterdir()) == \
        sorted(p.name for p in (tmp_path / "here" / "data_docs").iterdir())


def test_a_host_closed_without_a_job_ends():
    host = gatehost.GateHost()
    proc = host.proc
    assert proc is not None and proc.poll() is None
    host.close()
    assert proc.returncode is not None
    assert host.result() is None  # nothing was sent


@pytest.mark.parametrize("when", ["before its import ends", "after it"])
def test_a_host_closed_at_any_moment_leaves_no_process(when):
    host = gatehost.GateHost()
    proc = host.proc
    if when == "after it":
        time.sleep(5)
    host.close()
    assert proc.returncode is not None


def test_a_gate_that_fails_in_the_host_answers_none(tmp_path):
    figures, distinct, reference, cfg = _inputs()
    broken = {k: v for k, v in cfg.model_dump().items() if k != "value_sets"}  # not the settings: no suite from it
    with pytest.raises(AttributeError):
        run_gate(figures, distinct, reference, broken, tmp_path / "here")
    host = gatehost.GateHost()
    try:
        assert host.send(figures, distinct, reference, broken, str(tmp_path / "host"))
        assert host.result() is None
    finally:
        host.close()


def test_only_the_first_night_of_a_process_with_the_gate_on_has_a_host(monkeypatch):
    cfg = settings.load()
    monkeypatch.delitem(sys.modules, "great_expectations", raising=False)
    for name, value in (("_EARLY", None), ("_SPENT", False)):
        monkeypatch.setattr(gatehost, name, value)
    assert gatehost.start(cfg) is None  # nobody started one: a library call runs the gate itself
    monkeypatch.setattr(gatehost, "_SPENT", False)
    host = gatehost.early()
    try:
        assert host is not None and gatehost.early() is host  # one a night
        assert gatehost.start(cfg) is host
    finally:
        host.close()
    assert gatehost.early() is None  # the process's second night imports GX itself
    monkeypatch.setattr(gatehost, "_SPENT", False)
    host = gatehost.early()
    assert host is not None
    proc = host.proc
    off = settings_with({"expectations": {"enabled": False}})
    assert gatehost.start(off) is None and proc.returncode is not None  # the gate off: closed at once
    monkeypatch.setattr(gatehost, "_SPENT", False)
    monkeypatch.setitem(sys.modules, "great_expectations", object())
    assert gatehost.early() is None  # already imported here


def test_a_night_whose_gate_process_is_gone_runs_the_gate_itself(invoke, tmp_path, monkeypatch):
    """The host died before the night handed it anything: the night says so in its log and runs
    the gate in its own process, with the same verdict and files."""
    from tests.helpers import row, write_csv

    def dead(cfg):
        host = gatehost.GateHost()
        assert host.proc is not None
        host.proc.kill()
        host.proc.wait()
        return host

    extract = write_csv(tmp_path / "n.csv", [row(policy_no="G1"), row(policy_no="G2", applicant_phone="")])
    monkeypatch.setattr(gatehost, "start", dead)
    done = invoke("-v", "run", str(extract), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"))
    assert done.exit_code == 0, done.output
    assert "the gate's own process gave no answer; the gate runs in this one" in done.output
    assert (tmp_path / "o" / "expectations.json").is_file() and (tmp_path / "o" / "data_docs" / "index.html").is_file()
