"""`custdq notify` (issue 32, point 4): one message a user, as of a day, listing what is theirs to
do; sent through the SMTP relay of `notify.smtp`, or written to a folder (`--dry-run`).

Who gets what (users with an e-mail address, enabled):
- a branch user or lead: the open items assigned to them, and the unassigned open items of their
  branches (nobody else would be told of those): the new ones (first seen after the day of the
  user's last reminder; with none yet, on the store's latest night), those due within
  `notify.due_within_days`, those overdue;
- whoever settled an item a reviewer returned: that item (复核退回) until it is settled again;
- a reviewer: the settled items of their branches waiting in 待复核.

A message names items by id, rule, branch and deadline, with a link to each in the web app
(`notify.base_url`): never a customer's name, number, phone, account or address, nor an item's
evidence (mail is read on phones and forwarded). Each message sent (or written) is a row of the
access log (method MAIL): who was shown which items, as for a page.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import sqlalchemy as sa

from checks.catalogue import RULES
from pipeline import clock
from pipeline.cases.labels import REVIEW_STATE
from pipeline.errors import InputError
from pipeline.settings import Settings
from pipeline.store.schema import access_log, items, runs, users
from pipeline.web import audit
from pipeline.web.roles import INVESTIGATORS

KINDS = {"returned": "复核退回", "new": "新发现", "due": "即将到期", "overdue": "已逾期", "review": "待您复核"}
DRY_RUN = "dry-run"  # the access log's client of a message written, not sent
MAX_LISTED = 200  # items listed in one message; beyond, the count and a link to the list


@dataclass
class Message:
    user: str
    email: str
    lines: dict[str, list[dict]] = field(default_factory=dict)  # kind -> the items listed (up to MAX_LISTED)
    counts: dict[str, int] = field(default_factory=dict)  # kind -> how many there are

    @property
    def item_ids(self) -> list[str]:
        return list(dict.fromkeys(i["item_id"] for rows in self.lines.values() for i in rows))


COLUMNS = [items.c.item_id, items.c.rule_code, items.c.branch, items.c.due_date]


def _kind(conn: sa.Connection, where: list) -> tuple[list[dict], int]:
    """Up to MAX_LISTED items of `where` in deadline order, and how many there are (two queries
    a kind and user: the store's size does not enter memory)."""
    rows = [dict(r) for r in conn.execute(sa.select(*COLUMNS).where(*where).order_by(items.c.due_date, items.c.item_id)
                                          .limit(MAX_LISTED)).mappings()]
    total = len(rows) if len(rows) < MAX_LISTED else conn.execute(
        sa.select(sa.func.count()).select_from(items).where(*where)).scalar_one()
    return rows, int(total)


def gather(conn: sa.Connection, as_of: dt.date, cfg: Settings) -> tuple[list[Message], list[str]]:
    """The messages of `as_of` (users with something to do), and the users with something to do
    but no e-mail address."""
    night = conn.execute(sa.select(sa.func.max(runs.c.business_date))).scalar()
    soon = (as_of + dt.timedelta(days=cfg.notify.due_within_days)).isoformat()
    today = as_of.isoformat()
    out: list[Message] = []
    without: list[str] = []
    for person in conn.execute(sa.select(users.c.name, users.c.role, users.c.branches, users.c.email)
                               .where(users.c.disabled.is_(False)).order_by(users.c.name)).all():
        branches = sorted(set(json.loads(person.branches or "[]")))
        kinds: dict[str, list] = {}
        if person.role in INVESTIGATORS:
            last = conn.execute(sa.select(sa.func.max(access_log.c.path)).where(
                access_log.c.user_name == person.name, access_log.c.method == "MAIL",
                access_log.c.client != DRY_RUN, access_log.c.path < f"notify {today}")).scalar()
            since = last.split(" ", 1)[1] if last else None
            mine = [items.c.state == "open", items.c.work_state != REVIEW_STATE, sa.or_(
                items.c.assignee == person.name, sa.and_(items.c.assignee.is_(None), items.c.branch.in_(branches)))]
            fresh = items.c.first_seen > since if since else items.c.first_seen == (night or "")
            # what a reviewer sent back to the person who settled it (pipeline.cases.disposition.send_back)
            returned = [items.c.state == "open", items.c.disposed_by == person.name,
                        items.c.reopen_reason.like("复核退回%"), items.c.result.is_(None)]
            kinds = {"returned": returned, "new": [*mine, fresh], "overdue": [*mine, items.c.due_date < today],
                     "due": [*mine, items.c.due_date >= today, items.c.due_date <= soon]}
        elif person.role == "reviewer":
            kinds = {"review": [items.c.work_state == REVIEW_STATE, items.c.branch.in_(branches)]}
        message = Message(person.name, person.email or "")
        for kind, where in kinds.items():
            rows, total = _kind(conn, where)
            if total:
                message.lines[kind], message.counts[kind] = rows, total
        if not message.lines:
            continue
        if person.email:
            out.append(message)
        else:
            without.append(person.name)
    return out, without


def render(message: Message, as_of: dt.date, cfg: Settings) -> EmailMessage:
    base = (cfg.notify.base_url or "").rstrip("/")
    counts = "，".join(f"{KINDS[k]} {message.counts[k]} 件" for k in message.lines)
    body = [f"{message.user}，您好：", "", f"截至 {as_of.isoformat()}，您有以下问题件需要处理（{counts}）。", ""]
    for kind, rows in message.lines.items():
        body.append(f"【{KINDS[kind]}】{message.counts[kind]} 件")
        for i in rows:
            rule = RULES[i["rule_code"]].title if i["rule_code"] in RULES else i["rule_code"]
            link = f"  {base}/items/{i['item_id']}" if base else ""
            body.append(f"  {i['item_id']}  {rule}  {i['branch'] or ''}  处理期限 {i['due_date']}{link}")
        if message.counts[kind] > len(rows):
            body.append(f"  ……另有 {message.counts[kind] - len(rows)} 件，请在问题件清单中查看")
        body.append("")
    if base:
        body.append(f"问题件清单：{base}/items?assignee=me" if "review" not in message.lines else
                    f"复核队列：{base}/items?work_state=%E5%BE%85%E5%A4%8D%E6%A0%B8")
    body += ["", "本邮件由 custdq 自动发送，不含客户信息；请登录系统查看详情。"]
    mail = EmailMessage()
    mail["Subject"] = f"custdq 问题件提醒 {as_of.isoformat()}：{counts}"
    mail["From"] = cfg.notify.smtp.sender
    mail["To"] = message.email
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=cfg.notify.smtp.sender.rsplit("@", 1)[-1])
    mail.set_content("\n".join(body), charset="utf-8")
    return mail


@dataclass
class Report:
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # user, why
    without_email: list[str] = field(default_factory=list)


def notify(engine: sa.Engine, cfg: Settings, as_of: dt.date, dry_run: Path | None) -> Report:
    """Gather, render and send (or write) the messages of `as_of`; each one sent is an access-log
    row. A relay that refuses one message does not stop the others (Report.failed)."""
    smtp = cfg.notify.smtp
    host = smtp.host or ""
    if dry_run is None and not host:
        raise InputError("notify.smtp.host is not set: name the SMTP relay in the config, or write the messages "
                         "to a folder with --dry-run DIR")
    with engine.connect() as conn:
        messages, without = gather(conn, as_of, cfg)
    report = Report(without_email=without)
    if not messages:
        return report
    rendered = [(m, render(m, as_of, cfg)) for m in messages]
    if dry_run is not None:
        dry_run.mkdir(parents=True, exist_ok=True)
        for m, mail in rendered:
            (dry_run / f"{as_of.isoformat()}-{_file_name(m.user)}.eml").write_bytes(bytes(mail))
            report.sent.append(m.user)
        _record(engine, rendered, as_of, DRY_RUN, report)
        return report
    password = os.environ.get(smtp.password_env) if smtp.password_env else None
    if smtp.password_env and password is None:
        raise InputError(f"notify.smtp.password_env names {smtp.password_env}, which is not set in the environment")
    try:
        with smtplib.SMTP(host, smtp.port, timeout=smtp.timeout_seconds) as relay:
            if smtp.starttls:
                relay.starttls()
            if smtp.user:
                relay.login(smtp.user, password or "")
            for m, mail in rendered:
                try:
                    relay.send_message(mail)
                    report.sent.append(m.user)
                except smtplib.SMTPException as exc:
                    report.failed.append((m.user, _why(exc)))
    except (OSError, smtplib.SMTPException) as exc:
        raise InputError(f"SMTP relay {smtp.host}:{smtp.port}: {_why(exc)}; no reminder was sent") from None
    _record(engine, rendered, as_of, f"smtp:{smtp.host}", report)
    return report


def _record(engine: sa.Engine, rendered, as_of: dt.date, client: str, report: Report) -> None:
    sent = set(report.sent)
    with engine.begin() as conn:
        for m, _ in rendered:
            if m.user in sent:
                audit.write(conn, audit.row(clock.stamp(), m.user, "MAIL", f"notify {as_of.isoformat()}", m.item_ids,
                                            client, 250))


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "user"
