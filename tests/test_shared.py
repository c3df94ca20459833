"""PHONE_SHARED / BANK_SHARED across nights against a real case store (issue 4).

Each test runs whole nights through the CLI, on a real SQLite file and on a fresh database of
the real PostgreSQL server (skipped with the reason when no server is reachable).
"""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline import store
from tests.helpers import contact_index, person, policy, read_outputs, row, write_csv
from tests.helpers import postgres_url
from tests.helpers import gate_off


@pytest.fixture
def invoke(invoke):
    """The nights of this module run with the expectations gate off (tests/data/gate_off.yaml)."""
    return gate_off(invoke)


SHARED = ("PHONE_SHARED", "BANK_SHARED")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cases.db'}" if request.param == "sqlite" else postgres_url()


def contact_counts(db: str) -> tuple[int, int]:
    """(rows, current rows) of the contact index: live rows and those kept to take a night back."""
    with contact_index(db) as book:
        got = book.size()
    return got["rows"] + got["replaced_rows"], got["rows"]


@pytest.fixture
def night(invoke, tmp_path, db):
    """Run one night on `rows` against the store `db`; returns its shared-contact items (those
    that fired tonight: the list also carries earlier nights' open items)."""

    def _night(date: str, rows: list[dict], *extra: str) -> pd.DataFrame:
        out = tmp_path / f"out-{date}"
        extract = write_csv(tmp_path / f"extract-{date}.csv", rows)
        result = invoke("run", str(extract), "--business-date", date, "--out", str(out), "--quiet", "--db", db, *extra)
        assert result.exit_code == 0, result.output
        items = read_outputs(out)[0]
        items = items[items["last_seen"] == date]
        return items[items["rule_code"].isin(SHARED)].sort_values(["rule_code", "policy_no", "role"]).reset_index(drop=True)

    return _night


def pairs(items: pd.DataFrame) -> list[tuple[str, str, str]]:
    return sorted(zip(items["rule_code"], items["policy_no"], items["role"]))


def test_two_customers_with_one_phone_in_one_night(night):
    items = night("2026-11-20", [policy("P1", 1, applicant_phone="13900009999"),
                                 policy("P2", 2, applicant_phone="+86 139 0000 9999"), policy("P3", 3)])
    assert pairs(items) == [("PHONE_SHARED", "P1", "applicant"), ("PHONE_SHARED", "P2", "applicant")]
    first = items.iloc[0]
    assert first["severity"] == "warning" and first["category"] == "可疑线索"
    assert first["detail"] == "投保人电话与其他1名客户相同"
    assert first["evidence"].startswith("139****9999 同时出现在：保单P2 投保人 客*** 4****************")
    assert first["cluster_id"] == items.iloc[1]["cluster_id"] and first["cluster_size"] == "2"


def test_one_person_on_several_policies_is_one_customer(night):
    # same ID number; the 15-digit form of the same person; no ID but same name + birth + sex
    me = person(1)
    legacy = me["applicant_id_no"][:6] + me["applicant_id_no"][8:17]
    no_id = {"applicant_id_no": "", "applicant_id_type": ""}
    items = night("2026-11-20", [policy("P1", 1), policy("P2", 1), policy("P3", 1, applicant_id_no=legacy),
                                 policy("P4", 1, **no_id), policy("P5", 1, applicant_id_no=me["applicant_id_no"][:6] + " " + me["applicant_id_no"][6:].lower())])
    assert items.empty


def test_applicant_and_insured_of_one_policy_are_not_counted(night):
    # a couple sharing one phone and account on their own policy is not a clue
    items = night("2026-11-20", [policy("P1", 1, 2, insured_phone=person(1)["applicant_phone"]),
                                 policy("P2", 3, insured_phone="", applicant_phone=person(3)["applicant_phone"])])
    assert items.empty


def test_a_self_policy_with_the_insured_fields_filled_in(night):
    me = person(1)
    insured = {k.replace("applicant_", "insured_"): v for k, v in me.items() if k.startswith("applicant_")}
    items = night("2026-11-20", [policy("P1", 1) | insured | {"relation": "本人"}])
    assert items.empty


def test_a_third_customer_on_a_couples_phone_implicates_all(night):
    phone = person(1)["applicant_phone"]
    items = night("2026-11-20", [policy("P1", 1, 2, insured_phone=phone), policy("P2", 3, applicant_phone=phone)])
    assert pairs(items) == [("PHONE_SHARED", "P1", "applicant"), ("PHONE_SHARED", "P1", "insured"),
                            ("PHONE_SHARED", "P2", "applicant")]
    by_role = items.set_index(["policy_no", "role"])
    assert by_role.loc[("P2", "applicant"), "detail"] == "投保人电话与其他2名客户相同"
    assert by_role.loc[("P1", "insured"), "detail"] == "被保险人电话与其他1名客户相同"
    assert set(items["cluster_size"]) == {"3"}


@pytest.mark.parametrize("written", [
    "+86 139 0000 5555", "0086-13900005555", "139-0000-5555", "(+86)13900005555", "８６１３９００００５５５５",
    "86 139 0000 5555", "+86-139-0000-5555",
])
def test_phone_formats_meet_across_nights(night, written):
    assert night("2026-11-19", [policy("P1", 1, applicant_phone="13900005555")]).empty
    items = night("2026-11-20", [policy("P2", 2, applicant_phone=written)])
    assert pairs(items) == [("PHONE_SHARED", "P1", "applicant"), ("PHONE_SHARED", "P2", "applicant")]


def test_landline_with_area_code_forms(night):
    night("2026-11-19", [policy("P1", 1, applicant_phone="010-6552 1234")])
    items = night("2026-11-20", [policy("P2", 2, applicant_phone="+86 10 65521234"), policy("P3", 3, applicant_phone="(010)65521234")])
    assert pairs(items) == [("PHONE_SHARED", p, "applicant") for p in ("P1", "P2", "P3")]


def test_an_earlier_policy_newly_implicated_gets_its_item_tonight(night, tmp_path):
    assert night("2026-11-19", [policy("P1", 1, branch="北京分公司", agent_code="A0100", receipt_date="2026-11-19")]).empty
    items = night("2026-11-20", [policy("P2", 2, applicant_phone=person(1)["applicant_phone"])])
    assert pairs(items) == [("PHONE_SHARED", "P1", "applicant"), ("PHONE_SHARED", "P2", "applicant")]
    earlier = items.iloc[0]
    assert earlier["detail"] == "投保人电话与其他1名客户相同（该保单见于2026-11-19的提取）"
    assert (earlier["branch"], earlier["agent_code"], earlier["source_line"]) == ("北京分公司", "A0100", "")
    assert earlier["cooling_off_end"] == "2026-12-04" and earlier["business_date"] == "2026-11-20"
    assert items.iloc[1]["source_line"] == "2" and items.iloc[1]["source_file"].endswith("extract-2026-11-20.csv")


def test_rerunning_a_night_gives_the_same_items_and_index(night, db):
    night("2026-11-19", [policy("P1", 1)])
    tonight = [policy("P2", 2, applicant_phone=person(1)["applicant_phone"], bank_account=person(1)["bank_account"])]
    first = night("2026-11-20", tonight)
    rows_before = contact_counts(db)
    again = night("2026-11-20", tonight)
    assert first["item_id"].tolist() == again["item_id"].tolist() and len(first) == 4
    assert contact_counts(db) == rows_before == (4, 4)
    # the night re-run with P2 corrected: P2's earlier version is taken back, nothing is shared
    assert night("2026-11-20", [policy("P2", 2)]).empty
    assert night("2026-11-21", [policy("P3", 3, applicant_phone=person(1)["applicant_phone"])])["policy_no"].tolist() == ["P1", "P3"]


def test_a_policy_updated_on_a_later_night_leaves_its_old_phone(night):
    night("2026-11-18", [policy("P1", 1)])
    night("2026-11-19", [policy("P1", 1, applicant_phone="13911112222")])  # P1 corrected its phone
    assert night("2026-11-20", [policy("P2", 2, applicant_phone=person(1)["applicant_phone"])]).empty
    items = night("2026-11-21", [policy("P3", 3, applicant_phone="139 1111 2222")])
    assert items["policy_no"].tolist() == ["P1", "P3"]


def test_bank_accounts_compared_as_digits(night):
    card = "6222 0212 3456 7890 128"
    night("2026-11-19", [policy("P1", 1, bank_account=card)])
    items = night("2026-11-20", [policy("P2", 2, bank_account="6222-0212-3456-7890-128"),
                                 policy("P3", 3, bank_account="62220212345678901280")])  # one digit more: another account
    assert pairs(items) == [("BANK_SHARED", "P1", "applicant"), ("BANK_SHARED", "P2", "applicant")]
    assert items.iloc[0]["evidence"].startswith("622202*********0128 同时出现在：保单P2 投保人")
    assert items.iloc[1]["field"] == "bank_account" and items.iloc[1]["detail"] == "缴费账号与其他1名客户相同"


def test_clusters_follow_links_through_earlier_nights(night):
    # night 1: A and B share an account; night 2: C shares B's phone -> cluster A, B, C
    b = person(2)
    night("2026-11-19", [policy("P1", 1, bank_account=b["bank_account"]), policy("P2", 2)])
    items = night("2026-11-20", [policy("P3", 3, applicant_phone=b["applicant_phone"])])
    assert pairs(items) == [("PHONE_SHARED", "P2", "applicant"), ("PHONE_SHARED", "P3", "applicant")]
    assert set(items["cluster_size"]) == {"3"}
    assert items["cluster_id"].nunique() == 1


def test_fillers_and_invalid_numbers_are_not_shared_clues(night):
    items = night("2026-11-20", [policy("P1", 1, applicant_phone="13800138000"), policy("P2", 2, applicant_phone="13800138000"),
                                 policy("P3", 3, applicant_phone="12345"), policy("P4", 4, applicant_phone="12345"),
                                 policy("P5", 5, bank_account="1234"), policy("P6", 6, bank_account="1234")])
    assert items.empty


def test_evidence_of_a_hub_is_capped_but_counts_everyone(night):
    hub = "13600006666"
    items = night("2026-11-20", [policy(f"P{n:02d}", n, applicant_phone=hub) for n in range(1, 15)])
    assert len(items) == 14 and set(items["cluster_size"]) == {"14"}
    assert items.iloc[0]["detail"] == "投保人电话与其他13名客户相同"
    assert items.iloc[0]["evidence"].endswith("；等共13条记录") and items.iloc[0]["evidence"].count("保单") == 10


def test_index_load_seeds_the_book(invoke, night, tmp_path, db):
    book = write_csv(tmp_path / "book.csv", [policy("B1", 7), policy("B2", 8, applicant_phone="bad"), row(policy_no="")])
    result = invoke("index", "load", str(book), "--as-of", "2026-11-01", "--db", db,
                    "--out", str(tmp_path / "load"))
    assert result.exit_code == 0, result.output
    assert "3 rows read" in result.output and (tmp_path / "load" / "manifest.json").exists()
    items = night("2026-11-20", [policy("P1", 1, applicant_phone=person(7)["applicant_phone"])])
    assert pairs(items) == [("PHONE_SHARED", "B1", "applicant"), ("PHONE_SHARED", "P1", "applicant")]
    assert "2026-11-01" in items.iloc[0]["detail"]


def test_loading_the_same_book_twice_changes_nothing(invoke, tmp_path, db):
    book = write_csv(tmp_path / "book.csv", [policy("B1", 7), policy("B2", 8)])
    for _ in range(2):
        assert invoke("index", "load", str(book), "--as-of", "2026-11-01", "--db", db,
                      "--out", str(tmp_path / "load")).exit_code == 0
    assert contact_counts(db) == (4, 4)  # two policies x (phone + account)


def test_no_plaintext_contacts_at_rest(night, tmp_path, db):
    rows = [policy("P1", 1, 2), policy("P2", 3, applicant_phone=person(1)["applicant_phone"])]
    night("2026-11-20", rows)
    engine = store.open_store(db)
    tables = sa.MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:  # every value of every table, as the database returns it
        data = repr([conn.execute(t.select()).all() for t in tables.sorted_tables]).encode("utf-8")
    with contact_index(db) as book:  # and the contact index's rows, as DuckDB returns them
        stored = book.rows()
        assert stored.num_rows, "tonight's rows must be in the index"
        data += repr(stored.to_pylist()).encode("utf-8")
        data += b"".join(p.read_bytes() for p in book.db.path.parent.glob(book.db.path.name + "*"))
    data += b"".join(p.read_bytes() for p in tmp_path.glob("cases.db*"))  # the SQLite file and its WAL
    for r in rows:
        for col in ("applicant_phone", "insured_phone", "applicant_id_no", "insured_id_no", "bank_account", "applicant_name"):
            value = str(r[col])
            if value:
                assert value.encode("utf-8") not in data, col
                assert value[-8:].encode("utf-8") not in data, col


def test_disabled_rules_still_keep_the_index(night, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("rules:\n  disabled: [PHONE_SHARED]\n", encoding="utf-8")
    night("2026-11-19", [policy("P1", 1)], "--config", str(cfg))
    items = night("2026-11-20", [policy("P2", 2, applicant_phone=person(1)["applicant_phone"])])
    assert pairs(items) == [("PHONE_SHARED", "P1", "applicant"), ("PHONE_SHARED", "P2", "applicant")]


def test_index_compact_is_a_harmless_no_op_and_reruns_restore_replaced_rows(invoke, night, db):
    night("2026-11-18", [policy("P1", 1)])
    night("2026-11-19", [policy("P1", 1, applicant_phone="13911112222")])  # P1 corrected its phone
    before = contact_counts(db)
    result = invoke("index", "compact", "--db", db)
    assert result.exit_code == 0 and "nothing to do" in result.output
    assert contact_counts(db) == before
    assert night("2026-11-20", [policy("P2", 2, applicant_phone=person(1)["applicant_phone"])]).empty
    assert night("2026-11-21", [policy("P3", 3, applicant_phone="13911112222")])["policy_no"].tolist() == ["P1", "P3"]
    # a re-run of 2026-11-19 takes its rows back: P1's phone of 2026-11-18 is live again; P2
    # (2026-11-20) went with the rewound later nights
    night("2026-11-19", [policy("P9", 9)], "--rewind")
    assert night("2026-11-22", [policy("P4", 4, applicant_phone=person(1)["applicant_phone"])])["policy_no"].tolist() == ["P1", "P4"]


def test_a_book_loaded_into_a_used_index_is_merged(invoke, night, tmp_path, db):
    night("2026-11-19", [policy("P1", 1)])
    book = write_csv(tmp_path / "book.csv", [policy("B1", 7, applicant_phone=person(1)["applicant_phone"])])
    assert invoke("index", "load", str(book), "--as-of", "2026-11-19", "--db", db, "--out", str(tmp_path / "l")).exit_code == 0
    manifest = (tmp_path / "l" / "manifest.json").read_text(encoding="utf-8")
    assert '"bulk_mode": false' in manifest
    items = night("2026-11-20", [policy("P2", 2, applicant_phone=person(1)["applicant_phone"])])
    assert items["policy_no"].tolist() == ["B1", "P1", "P2"]


def test_a_policy_in_two_book_files_counts_once(invoke, night, tmp_path, db):
    first = write_csv(tmp_path / "book1.csv", [policy("B1", 7)])
    second = write_csv(tmp_path / "book2.csv", [policy("B1", 7, applicant_phone="13922223333"), policy("B2", 8)])
    result = invoke("index", "load", str(first), str(second), "--as-of", "2026-11-01", "--db", db,
                    "--out", str(tmp_path / "l"))
    assert result.exit_code == 0, result.output
    assert '"policies_in_earlier_file": 1' in (tmp_path / "l" / "manifest.json").read_text(encoding="utf-8")
    assert night("2026-11-20", [policy("P1", 1, applicant_phone="13922223333")]).empty
    assert night("2026-11-21", [policy("P2", 2, applicant_phone=person(7)["applicant_phone"])])["policy_no"].tolist() == ["B1", "P2"]


def test_a_night_that_fails_leaves_the_index_as_it_was(tmp_path, db, monkeypatch):
    """The night's index writes and its run record commit together or not at all."""
    import datetime as dt

    from pipeline import outputs
    from pipeline.night.run import NightRequest, run_night
    first = write_csv(tmp_path / "first.csv", [policy("P0", 9)])
    run_night(NightRequest([str(first)], dt.date(2026, 11, 19), str(tmp_path / "out0"), db, quiet=True))
    before = contact_counts(db)
    assert before == (2, 2)
    extract = write_csv(tmp_path / "e.csv", [policy("P1", 1), policy("P2", 2)])

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "write_items", disk_full)
    from pipeline.errors import InputError
    with pytest.raises(InputError, match="No space left on device"):
        run_night(NightRequest([str(extract)], dt.date(2026, 11, 20), str(tmp_path / "out"), db, quiet=True))
    assert contact_counts(db) == before
    assert [r["business_date"] for r in store.run_history(store.open_store(db))] == ["2026-11-19"]
