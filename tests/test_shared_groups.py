"""checks.shared on hand-built pools (no database): parties, identity resolution, clusters."""

from __future__ import annotations

import os
import stat

import hypothesis.strategies as st
import pandas as pd
import pytest
from hypothesis import given, settings

from checks import shared
from pipeline.store import hashkey
from pipeline.errors import InputError


def pool(*rows: tuple) -> pd.DataFrame:
    """rows: (value, customer, policy, field[, person]) with short names standing for hashes."""
    out = []
    for i, r in enumerate(rows):
        value, customer, policy, field = r[:4]
        person = r[4] if len(r) > 4 else None
        out.append({"id": i + 1, "kind": "P", "value": value.encode(), "customer": customer.encode(),
                    "person": person.encode() if person else None, "policy_no": policy, "field": field,
                    "masked_value": "139****0000", "masked_name": "张*", "masked_id": None, "branch": "b",
                    "channel": "c", "agent_code": "a", "receipt_date": None, "version": "2026-11-20N",
                    "row": i, "tonight": True})
    return pd.DataFrame(out)


AP, IP = "applicant_phone", "insured_phone"


def test_applicant_and_insured_of_one_policy_form_one_party():
    p = shared.parties(pool(("x", "A", "P1", AP), ("x", "B", "P1", IP)))
    assert p["parties"].tolist() == [1, 1]


def test_a_family_chain_stays_one_party():
    # A insures B on P1, B insures C on P2, all on one phone: linked only through their own policies
    p = shared.parties(pool(("x", "A", "P1", AP), ("x", "B", "P1", IP), ("x", "B", "P2", AP), ("x", "C", "P2", IP)))
    assert set(p["parties"]) == {1}


def test_a_stranger_on_the_familys_phone_makes_two_parties():
    hits = shared.involved(pool(("x", "A", "P1", AP), ("x", "B", "P1", IP), ("x", "C", "P2", AP)))
    assert sorted(zip(hits["policy_no"], hits["field"], hits["others"])) == [
        ("P1", AP, 1), ("P1", IP, 1), ("P2", AP, 2)]


def test_a_record_without_id_joins_the_one_documented_namesake():
    # customer D|... with person N1; a record known only as N1 (customer == person) on the same phone
    hits = shared.involved(pool(("x", "D1", "P1", AP, "N1"), ("x", "N1", "P2", AP, "N1")))
    assert hits.empty


def test_two_documented_namesakes_leave_an_undocumented_record_apart():
    hits = shared.involved(pool(("x", "D1", "P1", AP, "N1"), ("y", "D2", "P3", AP, "N1"), ("x", "N1", "P2", AP, "N1")))
    assert sorted(hits["policy_no"]) == ["P1", "P2"]


def test_clusters_are_components_over_shared_values():
    hits = shared.involved(pool(("x", "A", "P1", AP), ("x", "B", "P2", AP), ("y", "B", "P3", AP), ("y", "C", "P4", AP),
                                ("z", "E", "P5", AP), ("z", "F", "P6", AP)))
    sizes = dict(zip(hits["policy_no"], hits["cluster_size"]))
    assert sizes == {"P1": 3, "P2": 3, "P3": 3, "P4": 3, "P5": 2, "P6": 2}
    ids = dict(zip(hits["policy_no"], hits["cluster_id"]))
    assert ids["P1"] == ids["P4"] != ids["P5"]
    # labelled by the smallest customer hash in the component: stable whatever the row order
    assert ids["P1"] == "CL" + b"A".hex().upper()


def test_groups_without_a_row_of_tonight_raise_nothing():
    p = pool(("x", "A", "P1", AP), ("x", "B", "P2", AP))
    assert shared.involved(p.assign(tonight=False)).empty


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("xyz"), st.sampled_from("ABCD"), st.sampled_from(["P1", "P2", "P3"]),
                          st.sampled_from([AP, IP])), min_size=1, max_size=12, unique_by=lambda r: (r[2], r[3])),
       st.randoms())
def test_row_order_never_changes_the_result(rows, rnd):
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    a, b = shared.involved(pool(*rows)), shared.involved(pool(*shuffled))

    def view(h):
        return sorted(zip(h["policy_no"], h["field"], h["others"], h["cluster_id"], h["cluster_size"]))
    assert view(a) == view(b)


def test_a_judgement_handed_in_gives_the_same_items():
    p = pool(("x", "D1", "P1", AP, "N1"), ("x", "N1", "P2", AP, "N1"), ("x", "B", "P3", AP), ("y", "B", "P3", IP),
             ("y", "C", "P4", AP))
    alone = shared.involved(p)
    assert len(alone) == 5 and alone["cluster_size"].tolist() == [3] * 5  # N1 is D1: customers D1, B, C
    pd.testing.assert_frame_equal(shared.involved(p, shared.judge(p)), alone)
    other = p.iloc[:3].reset_index(drop=True)  # a judgement of other rows is not used
    pd.testing.assert_frame_equal(shared.involved(p, shared.judge(other)), alone)
    assert shared.shared_customers(p, shared.judge(p)) == shared.shared_customers(p) == {b"D1", b"B", b"C"}


def _evidence_row_by_row(hits: pd.DataFrame) -> list[str]:
    """The evidence as it was first written: per group, per row, its other parties' records."""
    import numpy as np

    out = {}
    for _, members in hits.groupby("group", sort=False):
        party, desc = members["party"].to_numpy(), shared._describe(members).to_numpy()
        masked = members["masked_value"].to_numpy()
        for i, idx in enumerate(members.index):
            other = np.flatnonzero(party != party[i])
            more = f"；等共{len(other)}条记录" if len(other) > shared.EVIDENCE_LIMIT else ""
            out[idx] = f"{masked[i]} 同时出现在：{'；'.join(desc[other[:shared.EVIDENCE_LIMIT]])}{more}"
    return [out[i] for i in hits.index]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("xy"), st.sampled_from("ABCDEFGHIJKLMNOP"),
                          st.sampled_from([f"P{i:02d}" for i in range(30)]), st.sampled_from([AP, IP])),
                min_size=2, max_size=60, unique_by=lambda r: (r[2], r[3])))
def test_evidence_lists_the_first_ten_records_of_other_parties(rows):
    # big groups on two values, families (applicant and insured of one policy) as parties of several rows
    p = pool(*rows)
    p = p.assign(masked_name=p["customer"].map(lambda c: c.decode() + "*"),
                 masked_value=p["value"].map(lambda v: f"139****{v.decode()}"))
    hits = shared.involved(p)
    assert hits["evidence"].tolist() == _evidence_row_by_row(hits)


def test_evidence_past_ten_records_says_how_many():
    rows = [("x", "A", "P00", AP), ("x", "A", "P01", AP)] + [("x", c, f"P{i + 2:02d}", AP) for i, c in enumerate("BCDEFGHIJKLM")]
    hits = shared.involved(pool(*rows))
    evidence = dict(zip(hits["policy_no"], hits["evidence"]))
    assert evidence["P00"].endswith("；等共12条记录") and evidence["P00"].count("保单") == 10
    assert "保单P01" not in evidence["P00"] and "保单P02" in evidence["P00"]  # not its own party's records
    assert evidence["P02"].endswith("；等共13条记录") and "保单P00" in evidence["P02"]
    assert evidence["P13"].count("保单") == 10 and "保单P13" not in evidence["P13"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([b"\x00\x01", b"\xff\x10", b"ab", b"\x7f\x80"])),
                min_size=1, max_size=30), st.booleans())
def test_suppression_keys_are_the_hex_of_the_hashes(pairs, mixed_widths):
    from pipeline.book import detect

    customers = [c + (b"\x05" if mixed_widths and i % 3 == 0 else b"") for i, (_, c) in enumerate(pairs)]
    hits = pd.DataFrame({"group": [g for g, _ in pairs], "value": [bytes([g]) * 16 for g, _ in pairs],
                         "customer": customers})
    keys = detect.suppression_keys(hits)
    customer = hits["customer"].map(lambda b: bytes(b).hex())
    members = customer.groupby(hits["group"].to_numpy()).agg(lambda s: ",".join(sorted(set(s))))
    assert list(keys["value_key"]) == [bytes([g]).hex() * 16 for g, _ in pairs]
    assert list(keys["customer_key"]) == list(customer)
    assert list(keys["group_keys"]) == list(members.reindex(hits["group"].to_numpy()))


def test_key_file_is_created_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv(hashkey.ENV)
    path = tmp_path / "keys" / "hash.key"
    first = hashkey.load_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(first) == 64
    assert hashkey.load_key(path) == first
    os.chmod(path, 0o644)
    hashkey.load_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_short_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(hashkey.ENV, "short")
    with pytest.raises(InputError, match="at least 32"):
        hashkey.load_key(tmp_path / "unused")


def test_another_key_on_the_same_store_is_refused(invoke, tmp_path, monkeypatch):
    from tests.helpers import row, write_csv
    extract = write_csv(tmp_path / "e.csv", [row()])
    assert invoke("run", str(extract), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"), "--quiet").exit_code == 0
    monkeypatch.setenv(hashkey.ENV, "another-key-" + "x" * 40)
    result = invoke("run", str(extract), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"), "--quiet")
    assert result.exit_code == 2
    assert "not the key this case store was built with" in result.output and "Traceback" not in result.output


def test_an_unusable_key_location_is_an_input_error(invoke, tmp_path, monkeypatch):
    from tests.helpers import row, write_csv
    monkeypatch.delenv(hashkey.ENV)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"hash_key_file: '{blocker / 'hash.key'}'\n", encoding="utf-8")
    extract = write_csv(tmp_path / "e.csv", [row()])
    result = invoke("run", str(extract), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"),
                    "--config", str(cfg), "--quiet")
    assert result.exit_code == 2 and "cannot read or create the hash key file" in result.output


def test_two_processes_creating_the_key_agree(tmp_path, monkeypatch):
    import multiprocessing
    monkeypatch.delenv(hashkey.ENV)
    path = tmp_path / "k" / "hash.key"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        keys = pool.map(hashkey.load_key, [path] * 8)
    assert len(set(keys)) == 1 and hashkey.load_key(path) == keys[0]
    assert [p.name for p in path.parent.iterdir()] == ["hash.key"]  # no temporary left behind


def test_the_key_lives_beside_the_store_whatever_the_working_directory(runner, tmp_path, monkeypatch):
    from pipeline.cli import cli
    from tests.helpers import row, write_csv
    monkeypatch.delenv(hashkey.ENV)
    db = f"sqlite:///{tmp_path / 'store' / 'cases.db'}"
    extract = write_csv(tmp_path / "e.csv", [row()])
    for folder in ("a", "b"):  # two runs from two working directories against one store
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        result = runner.invoke(cli, ["run", str(extract), "--business-date", "2026-11-20", "--db", db, "--quiet"])
        assert result.exit_code == 0, result.output
    key = tmp_path / "store" / "hash.key"
    assert key.is_file() and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert not (tmp_path / "a" / ".custdq" / "hash.key").exists()
