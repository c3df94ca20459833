"""One disposition of one item (SPEC 6), the one code path of `cases import` and the web app:
which values are refused and why (in Chinese: the teams read it), and what a disposition
changes: the item, an event with who made it and from where, and the suppressions of 核实无误.

Settling (已完成 + a result): 已更正 and 核实无误 close the item, 虚假资料 closes it and keeps it
for the quarterly report, 无法联系 records the attempt and leaves it open. 核实无误 also writes
suppressions: the same customers on the same value are not raised again (pipeline.cases.night).
With a review (settings `review.results`, default 核实无误 and 虚假资料), such a result does not
close the item: it waits in 待复核 (REVIEW_STATE) until a reviewer who did not settle it approves
it (`approve`: it closes, with its effects) or returns it with a reason (`send_back`: back to
处理中, the result cleared, the reason in 重开原因). A 待复核 item takes no other disposition.
Free text in 处理说明 is stored through checks.masking.mask_text (teams sometimes type a phone or
an identity number there, grouped any way; the store keeps none in plaintext), and so is what a
refusal quotes of a cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlalchemy as sa

from checks.masking import mask_text
from pipeline.cases.items import ITEM_ID
from pipeline.cases.night import SHARED_RULES
from pipeline.cases.labels import RESULTS, REVIEW_STATE, STATES
from pipeline.store import read_frame
from pipeline.store.schema import item_events, items, suppressions

CLOSING = {"已更正": "corrected", "核实无误": "legitimate", "虚假资料": "false"}  # 无法联系 leaves it open
CHECKED = {"保单号": "policy_no", "规则代码": "rule_code"}  # a worklist row's columns that must match the item
MAX_NOTE = 2000


@dataclass
class Entry:
    """What a person entered for an item: a worklist row, or the web app's form."""

    item_id: str
    state: str  # 处理状态 ("" reads as 未处理)
    result: str  # 处理结果
    note: str  # 处理说明
    checked: dict[str, str] = field(default_factory=dict)  # CHECKED columns as the row shows them


def _choices(values: list[str]) -> str:
    return " / ".join(values)


def problem(entry: Entry, item: dict | None) -> str | None:
    """Why the entry must be refused, or None."""
    if not entry.item_id:
        return "问题件编号为空"
    if item is None:
        return f"问题件编号 {mask_text(entry.item_id[:40], ITEM_ID)} 不存在（不是本案件库中的问题件）"
    for header, column in CHECKED.items():
        if entry.checked.get(header) and entry.checked[header] != str(item[column]):
            return f"{header}已被修改，与问题件 {entry.item_id} 的记录不一致：此行未作任何更改"
    if entry.state == REVIEW_STATE:  # a worklist row of an item waiting for its review, as issued
        if item["work_state"] == REVIEW_STATE and disposition(entry) == held(item):
            return None
        return f"处理状态「{REVIEW_STATE}」由系统在提交需复核的处理结果时设置，不能填写（可选：{_choices(STATES)}）"
    if entry.state and entry.state not in STATES:
        return f"处理状态「{mask_text(entry.state[:20])}」不在可选项中（{_choices(STATES)}）"
    if entry.result and entry.result not in RESULTS:
        return f"处理结果「{mask_text(entry.result[:20])}」不在可选项中（{_choices(RESULTS)}）"
    state = entry.state or STATES[0]
    if state == "已完成" and not entry.result:
        return "处理状态为已完成，但未填写处理结果"
    if state == "未处理" and entry.result:
        return "填写了处理结果，但处理状态为未处理：请改为处理中或已完成"
    if state == "处理中" and entry.result in CLOSING:
        return f"处理结果「{entry.result}」会办结问题件，只能在处理状态为已完成时填写"
    if disposition(entry) == held(item):
        return None  # the entry says what the store holds (a worklist returned as it was sent): no change
    if item["work_state"] == REVIEW_STATE:
        return (f"问题件 {entry.item_id} 的处理结果「{item['result']}」正在等待复核（{item['disposed_by']} 提交）："
                "复核人员批准或退回之前不能修改，此行未作更改")
    if item["state"] == "closed" and item["close_reason"] != "resolved" and entry.result not in CLOSING:
        settled = next(k for k, v in CLOSING.items() if v == item["close_reason"]) if item["close_reason"] in \
            CLOSING.values() else item["close_reason"]
        return f"问题件 {entry.item_id} 已于 {item['closed_on']} 办结（{settled}）：此行会把它重新打开，未作更改"
    if item["state"] == "closed" and item["close_reason"] == "resolved" and entry.result not in CLOSING:
        return (f"问题件 {entry.item_id} 已于 {item['closed_on']} 关闭（该问题已不再触发）："
                f"只接受处理状态为已完成的处理结果")
    return None


DISPOSED = ("work_state", "result", "note")  # an item's disposition, as a worklist issues it
REVIEWED_ACTIONS = ("disposed", "approved", "returned")  # the events that change a disposition


def _settled(state: str | None) -> str:
    """A 处理状态 as a disposition reads it: 待复核 is 已完成 waiting for its review."""
    return STATES[2] if state == REVIEW_STATE else state or STATES[0]


def disposition(entry: Entry) -> tuple:
    """What an entry says, in the store's form: (处理状态, 处理结果 or None, 处理说明 masked or None)."""
    return _settled(entry.state), entry.result or None, note_of(entry.note)


def held(item: dict) -> tuple:
    """The item's disposition now, in the same form (an item waiting for its review holds 已完成)."""
    return _settled(item["work_state"]), item["result"] or None, item["note"] or None


def untouched(entry: Entry) -> bool:
    """Nothing filled in (an older copy of a worklist never undoes progress)."""
    return entry.state in ("", STATES[0]) and not entry.result and not entry.note


def earlier(conn: sa.Connection, item: dict) -> set[tuple]:
    """Every disposition the item held before its current one (read back from its `disposed`
    events, newest first), and the one it was raised with: what any worklist issued before the
    item last changed said of it."""
    now = dict(zip(DISPOSED, held(item)))
    out = {(STATES[0], None, None)}
    events = conn.execute(sa.select(item_events.c.what).where(item_events.c.item_id == item["item_id"],
                                                              item_events.c.action.in_(REVIEWED_ACTIONS))
                          .order_by(item_events.c.id.desc()))
    for (what,) in events:
        changed = json.loads(what or "{}")
        for key in DISPOSED:
            if key in changed:
                now[key] = changed[key][0]
        out.add((_settled(now["work_state"]), now["result"] or None, now["note"] or None))
    return out


def note_of(text: str) -> str | None:
    text = mask_text((text or "").replace("\x00", ""))[:MAX_NOTE]
    return text or None


def _after(entry: Entry, item: dict, today: str, review: frozenset[str]) -> dict:
    """The item's fields after the entry (only the disposition and the lifecycle change)."""
    state = entry.state or STATES[0]
    after = {"work_state": state, "result": entry.result or None, "note": note_of(entry.note)}
    if entry.result in CLOSING and entry.result in review:
        after["work_state"] = REVIEW_STATE  # settled, not closed: a reviewer decides
    elif entry.result in CLOSING:
        after.update(state="closed", close_reason=CLOSING[entry.result],
                     closed_on=item["closed_on"] if item["state"] == "closed" else today)
    return after


def apply(conn: sa.Connection, entry: Entry, item: dict, who: str, at: str, today: str, source: str,
          review: frozenset[str] = frozenset()) -> str:
    """Apply an entry `problem` accepted to `item` (a dict of its stored columns, updated in
    place); a result in `review` waits for its review. Returns "untouched" (nothing filled in:
    an older copy never undoes progress), "unchanged" (it says what the store holds) or
    "applied" (the item, an event, suppressions)."""
    if entry.state in ("", STATES[0]) and not entry.result and not entry.note:
        return "untouched"
    if entry.state == REVIEW_STATE:
        return "unchanged"  # `problem` let it through: it says what the store holds
    after = _after(entry, item, today, review)
    return _change(conn, item, after, who, at, source, "disposed", {}, settled=True)


def _change(conn: sa.Connection, item: dict, after: dict, who: str, at: str, source: str, action: str,
            said: dict, settled: bool) -> str:
    """Write `after` to the item with an event (`action`; `said`: more of what it records), its
    suppressions following its close reason. `settled`: the change is a disposition (who and
    when it was disposed are recorded on the item)."""
    changed = {k: [item.get(k), v] for k, v in after.items() if item.get(k) != v}
    if not changed:
        return "unchanged"
    if settled:
        after = after | {"disposed_at": at, "disposed_by": who}
    conn.execute(items.update().where(items.c.item_id == item["item_id"]).values(**after))
    conn.execute(item_events.insert().values(
        item_id=item["item_id"], at=at, who=who, night=None, action=action,
        what=json.dumps(changed | said, ensure_ascii=False), before=None, source=source))
    if settled or "close_reason" in after:
        _suppress(conn, item, after, at, who)
    item.update(after)
    return "applied"


def review_problem(item: dict | None, reviewer: str) -> str | None:
    """Why `reviewer` may not decide on the item's review now, or None."""
    if item is None:
        return "问题件不存在"
    if item["work_state"] != REVIEW_STATE:
        return f"问题件 {item['item_id']} 不在待复核状态（现为{item['work_state']}）"
    if item["disposed_by"] == reviewer:
        return f"问题件 {item['item_id']} 的处理结果由您本人提交：复核须由另一位复核人员完成"
    return None


def approve(conn: sa.Connection, item: dict, who: str, at: str, today: str, source: str) -> str:
    """The review approves the settled result: the item closes as the result says (its
    suppressions, the quarterly report); `review_problem` has accepted it."""
    after = {"work_state": STATES[2], "state": "closed", "close_reason": CLOSING[item["result"]],
             "closed_on": item["closed_on"] if item["state"] == "closed" else today}
    return _change(conn, item, after, who, at, source, "approved", {}, settled=False)


def send_back(conn: sa.Connection, item: dict, who: str, reason: str, at: str, source: str) -> str:
    """The review returns the item to its investigator: 处理中, the result cleared, the reason
    (masked, as a note is) in 重开原因 for the worklists and the web app."""
    text = note_of(reason) or ""
    after = {"work_state": STATES[1], "result": None, "reopen_reason": f"复核退回（{who}）：{text}"}
    return _change(conn, item, after, who, at, source, "returned", {"reason": text}, settled=False)


def _suppress(conn: sa.Connection, item: dict, after: dict, at: str, who: str) -> None:
    """核实无误 suppresses the finding for the same customers and value; changing a disposition
    away from 核实无误 takes its suppressions back."""
    conn.execute(suppressions.delete().where(suppressions.c.item_id == item["item_id"]))
    if after.get("close_reason", item["close_reason"]) != "legitimate" or not item["value_key"]:
        return
    if item["rule_code"] in SHARED_RULES:
        subjects = set(filter(None, (item["group_keys"] or "").split(","))) | {item["customer_key"]} - {None}
    else:
        subjects = {item["item_id"]}
    have = set(read_frame(conn, sa.select(suppressions.c.subject_key).where(
        suppressions.c.rule_code == item["rule_code"], suppressions.c.value_key == item["value_key"]))["subject_key"])
    for subject in sorted(subjects - have):
        conn.execute(suppressions.insert().values(rule_code=item["rule_code"], value_key=item["value_key"],
                                                  subject_key=subject, item_id=item["item_id"], at=at, who=who))


def assign(conn: sa.Connection, item: dict, assignee: str | None, who: str, at: str, source: str) -> str:
    """Assign the item to `assignee` (a user of its branch; None: unassigned), an `assigned`
    event; the caller has checked who may assign and to whom. "unchanged" when it is theirs already."""
    return _change(conn, item, {"assignee": assignee}, who, at, source, "assigned", {}, settled=False)
