"""`pipeline.cases.night.reconcile` on its own (issue 17): hand-built findings against a real
SQLite case store, one lifecycle transition a test (SPEC 6). The teams' dispositions, which
`cases import` writes in a real night, are set here with plain SQL on the items table, so each
test shows exactly which stored state leads to which change."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import sqlalchemy as sa

from checks.catalogue import RULES
from pipeline import store
from pipeline.cases import history
from pipeline.cases.night import reconcile
from pipeline.cases.items import DATE_FIELDS, ITEM_COLUMNS, KEY_COLUMNS, item_ids
from pipeline.store.schema import item_events, items, night_undo, suppressions

MON, TUE, WED = dt.date(2026, 11, 16), dt.date(2026, 11, 17), dt.date(2026, 11, 18)
THU = dt.date(2026, 11, 19)
AT = "2026-11-16T23:00:00+08:00"


def finding(policy_no: str, night: dt.date, rule: str = "ID_SEX_MISMATCH", role: str = "applicant",
            field: str = "applicant_sex", evidence: str = "性别=男", value_key: str | None = None,
            customer_key: str | None = None, list_due: dt.date | None = None) -> dict:
    """One finding as `pipeline.night.items.build` hands it on, with `value_key` filled."""
    due = pd.Timestamp(list_due or night + dt.timedelta(days=1))
    spec = RULES[rule]
    return {
        "business_date": pd.Timestamp(night), "policy_no": policy_no, "role": role, "rule_code": rule,
        "severity": spec.severity, "category": spec.category, "field": field, "detail": spec.title,
        "evidence": evidence, "branch": "广州分公司", "channel": "个险", "agent_code": "A001",
        "first_seen": pd.Timestamp(night), "list_due": due, "channel_due": due + pd.Timedelta(days=3),
        "cooling_off_end": pd.Timestamp(night) + pd.Timedelta(days=15), "due_date": due + pd.Timedelta(days=3),
        "provisional": False, "status": "new", "last_seen": pd.Timestamp(night), "source_file": "extract.csv",
        "source_line": 2, "cluster_id": None, "cluster_size": pd.NA,
        "value_text": None, "value_key": value_key, "customer_key": customer_key, "group_keys": None,
    }


def fired(*rows: dict) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=[c for c in ITEM_COLUMNS + KEY_COLUMNS if c != "item_id"])
    frame["item_id"] = item_ids(frame) if len(frame) else pd.Series(dtype="str")
    for col in DATE_FIELDS:
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    frame["source_line"] = frame["source_line"].astype("Int64")
    frame["cluster_size"] = frame["cluster_size"].astype("Int64")
    return frame[ITEM_COLUMNS + KEY_COLUMNS]


NO_FINDINGS = fired()


@pytest.fixture
def engine(tmp_path):
    eng = store.open_store(f"sqlite:///{tmp_path / 'cases.db'}")
    yield eng
    eng.dispose()


def night(engine, night_date: dt.date, findings: pd.DataFrame, judged: list[str],
          rules_ran: set[str] | None = None, judged_values=()):
    with engine.begin() as conn:
        return reconcile(conn, findings, night_date, AT, pd.Index(judged),
                         {"ID_SEX_MISMATCH", "PHONE_SHARED"} if rules_ran is None else rules_ran, list(judged_values))


def stored(engine, item_id: str) -> dict:
    """The stored item, its ISO dates read back as dates."""
    with engine.connect() as conn:
        row = dict(conn.execute(sa.select(items).where(items.c.item_id == item_id)).mappings().one())
    for col in ("first_seen", "list_due", "last_seen", "closed_on"):
        row[col] = dt.date.fromisoformat(row[col]) if row[col] else None
    return row


def actions(engine, item_id: str, shown: bool = True) -> list[str]:
    """The item's history as people see it (its `raised` entry first), or its stored events."""
    with engine.connect() as conn:
        if shown:
            return [e["action"] for e in history.events(conn, item_id)]
        q = sa.select(item_events.c.action).where(item_events.c.item_id == item_id).order_by(item_events.c.id)
        return list(conn.execute(q).scalars())


def close(engine, item_id: str, reason: str, on: dt.date) -> None:
    """What `cases import` leaves after a disposition: the item closed for `reason`."""
    with engine.begin() as conn:
        conn.execute(items.update().where(items.c.item_id == item_id)
                     .values(state="closed", close_reason=reason, closed_on=on.isoformat(), work_state="已完成"))


def test_a_finding_not_in_the_store_is_new_with_tonights_deadlines(engine):
    f = fired(finding("P1", MON))
    result = night(engine, MON, f, ["P1"])
    item_id = f["item_id"].iloc[0]
    assert result.counts["new"] == 1 and result.counts["total"] == 1 and result.counts["carried"] == 0
    assert result.listing["status"].tolist() == ["new"]
    row = stored(engine, item_id)
    assert (row["state"], row["work_state"], row["first_seen"], row["list_due"]) == ("open", "未处理", MON, TUE)
    assert actions(engine, item_id) == ["raised"]
    # a new item costs one row: no stored event, no undo-journal row (the night's one marker only)
    assert actions(engine, item_id, shown=False) == []
    with engine.connect() as conn:
        journal = conn.execute(sa.select(night_undo.c.item_id).where(night_undo.c.night == MON.isoformat())).all()
        shown = history.events(conn, item_id)[0]
    assert journal == [("",)]
    assert (shown["night"], shown["who"], json.loads(shown["what"])) == (
        MON.isoformat(), "custdq run", {"rule_code": "ID_SEX_MISMATCH", "due_date": row["due_date"]})


def test_an_open_item_firing_again_is_carried_with_its_first_deadlines_and_fresh_evidence(engine):
    night(engine, MON, fired(finding("P1", MON)), ["P1"])
    again = fired(finding("P1", TUE, evidence="性别=女"))
    result = night(engine, TUE, again, ["P1"])
    row = stored(engine, again["item_id"].iloc[0])
    assert (result.counts["new"], result.counts["carried"]) == (0, 1)
    assert result.listing["status"].tolist() == ["open"]
    assert (row["first_seen"], row["list_due"], row["last_seen"]) == (MON, TUE, TUE)
    assert row["evidence"] == "性别=女"


def test_an_open_item_judged_tonight_that_did_not_fire_is_resolved(engine):
    f = fired(finding("P1", MON))
    night(engine, MON, f, ["P1"])
    result = night(engine, TUE, NO_FINDINGS, ["P1"])
    row = stored(engine, f["item_id"].iloc[0])
    assert (row["state"], row["close_reason"], row["closed_on"]) == ("closed", "resolved", TUE)
    assert result.counts["resolved"] == 1 and result.listing.empty
    assert actions(engine, f["item_id"].iloc[0]) == ["raised", "resolved"]


@pytest.mark.parametrize("judged, rules_ran", [([], None), (["P1"], {"PHONE_SHARED"})],
                         ids=["policy not in tonight's extract", "its rule did not run"])
def test_an_open_item_not_judged_tonight_stays_open_and_listed(engine, judged, rules_ran):
    f = fired(finding("P1", MON))
    night(engine, MON, f, ["P1"])
    result = night(engine, TUE, NO_FINDINGS, judged, rules_ran)
    assert stored(engine, f["item_id"].iloc[0])["state"] == "open"
    assert result.counts["resolved"] == 0
    assert result.listing["item_id"].tolist() == f["item_id"].tolist()
    assert result.listing["status"].tolist() == ["open"]


def test_an_item_closed_as_corrected_that_fires_again_is_reopened_with_its_first_deadlines(engine):
    night(engine, MON, fired(finding("P1", MON)), ["P1"])
    item_id = fired(finding("P1", MON))["item_id"].iloc[0]
    close(engine, item_id, "corrected", MON)
    result = night(engine, WED, fired(finding("P1", WED)), ["P1"])
    row = stored(engine, item_id)
    assert result.counts["reopened"] == 1 and result.counts["new"] == 0
    assert (row["state"], row["close_reason"], row["work_state"]) == ("open", None, "未处理")
    assert (row["first_seen"], row["list_due"]) == (MON, TUE)  # as late as it was
    assert row["reopen_reason"] == "已更正于 2026-11-16，2026-11-18 仍触发"
    assert actions(engine, item_id) == ["raised", "reopened"]


def test_a_confirmed_legitimate_finding_is_suppressed_and_a_changed_value_raises_it_again(engine):
    first = fired(finding("P1", MON, value_key="v1"))
    item_id = first["item_id"].iloc[0]
    night(engine, MON, first, ["P1"])
    close(engine, item_id, "legitimate", MON)
    with engine.begin() as conn:  # the confirmation covers this value for this item
        conn.execute(suppressions.insert().values(rule_code="ID_SEX_MISMATCH", value_key="v1", subject_key=item_id,
                                                  item_id=item_id, at="2026-11-16T12:00:00+08:00", who="tester"))
    same = night(engine, TUE, fired(finding("P1", TUE, value_key="v1")), ["P1"])
    assert same.counts["suppressed"] == 1 and same.listing.empty
    assert stored(engine, item_id)["state"] == "closed"
    changed = night(engine, WED, fired(finding("P1", WED, value_key="v2")), ["P1"])
    row = stored(engine, item_id)
    assert changed.counts["raised_again"] == 1 and changed.counts["suppressed"] == 0
    assert (row["state"], row["first_seen"], row["list_due"]) == ("open", WED, THU)
    assert changed.listing["item_id"].tolist() == [item_id]


def test_a_finding_confirmed_false_stays_settled(engine):
    f = fired(finding("P1", MON))
    night(engine, MON, f, ["P1"])
    close(engine, f["item_id"].iloc[0], "false", MON)
    result = night(engine, TUE, fired(finding("P1", TUE)), ["P1"])
    row = stored(engine, f["item_id"].iloc[0])
    assert result.counts["settled_still_firing"] == 1 and result.listing.empty
    assert (row["state"], row["close_reason"]) == ("closed", "false")


def shared(policy_no: str, night_date: dt.date, customer: str, value: str = "k-phone") -> dict:
    return finding(policy_no, night_date, rule="PHONE_SHARED", field="applicant_phone", value_key=value,
                   customer_key=customer)


def test_a_shared_item_is_resolved_when_its_value_was_looked_up_though_its_policy_was_not_read(engine):
    f = fired(shared("P1", MON, "c1"), shared("P2", MON, "c2"))
    night(engine, MON, f, ["P1", "P2"])
    result = night(engine, TUE, NO_FINDINGS, [], judged_values=["k-phone"])
    assert result.counts["resolved"] == 2 and result.listing.empty
    kept = night(engine, WED, fired(shared("P3", WED, "c3", value="k-other")), [], judged_values=["k-unrelated"])
    assert kept.counts["resolved"] == 0 and kept.counts["new"] == 1


def test_a_shared_confirmation_covers_the_confirmed_customer_not_a_new_one(engine):
    f = fired(shared("P1", MON, "c1"), shared("P2", MON, "c2"))
    night(engine, MON, f, ["P1", "P2"])
    with engine.begin() as conn:
        for item_id, customer in zip(f["item_id"], ["c1", "c2"]):
            conn.execute(items.update().where(items.c.item_id == item_id)
                         .values(state="closed", close_reason="legitimate", closed_on=MON.isoformat()))
            conn.execute(suppressions.insert().values(rule_code="PHONE_SHARED", value_key="k-phone",
                                                      subject_key=customer, item_id=item_id,
                                                      at="2026-11-16T12:00:00+08:00", who="tester"))
    tonight = fired(shared("P1", TUE, "c1"), shared("P2", TUE, "c2"), shared("P9", TUE, "c9"))
    result = night(engine, TUE, tonight, ["P1", "P2", "P9"])
    assert result.counts["suppressed"] == 2 and result.counts["new"] == 1
    assert result.listing["policy_no"].tolist() == ["P9"]
