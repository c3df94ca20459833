"""`custdq notify` (issue 32, point 4): each user one message of their new, soon-due and overdue
items, each branch's reviewers what waits for them; through a real SMTP server on loopback
(aiosmtpd) and as files (--dry-run); no customer's data in a message; every message a row of the
access log. On a real SQLite file and on the PostgreSQL server."""

from __future__ import annotations

import email
import email.policy
import os

import pytest
import sqlalchemy as sa

from pipeline.cases.disposition import send_back
from pipeline.cases.undo import python_value
from pipeline.store.schema import access_log, items
from tests.helpers import fill, item_of, policy, postgres_url, read_outputs, store_rows, write_csv
from tests.webserve import free_port, prepare

GD, BJ = "广东分公司", "北京分公司"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'cases.db'}" if request.param == "sqlite" else postgres_url()


@pytest.fixture
def relay():
    """A real SMTP server on a loopback port, keeping every message it receives."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self):
            self.got: list = []

        async def handle_DATA(self, server, session, envelope):
            self.got.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


def store_with_users(invoke, tmp_path, db):
    """A night (2026-11-20) of GD and BJ items; users: 张三 (GD, with e-mail), 李四 (GD, none),
    复核王 (GD reviewer), 北京赵 (BJ); one GD item assigned to 张三, one settled 核实无误 (待复核)."""
    rows = [policy(f"P{n}", n, applicant_sex="女", branch=GD, applicant_phone=f"1391234{n:04d}") for n in (10, 11, 12)]
    rows.append(policy("P20", 20, applicant_sex="女", branch=BJ))
    out = tmp_path / "o1"
    done = invoke("run", str(write_csv(tmp_path / "n1.csv", rows)), "--business-date", "2026-11-20", "--out", str(out),
                  "--quiet", "--db", db)
    assert done.exit_code == 0, done.output
    found = read_outputs(out)[0]
    for name, role, branch, address in (("张三", "branch", GD, "zhangsan@example.com"), ("李四", "branch", GD, None),
                                        ("复核王", "reviewer", GD, "reviewer@example.com"),
                                        ("北京赵", "branch", BJ, "zhao@example.com")):
        extra = ["--email", address] if address else []
        added = prepare("users", "add", name, "--role", role, "--branch", branch, "--db", db, *extra,
                        stdin="pass-word-123\npass-word-123\n", cwd=tmp_path)
        assert added.returncode == 0, added.stderr
    legit = item_of(found, "P11", "ID_SEX_MISMATCH")
    filled = fill(out, {legit: ("已完成", "核实无误", "")}, tmp_path / "filled")
    assert invoke("cases", "import", *map(str, filled), "--by", "张三", "--db", db).exit_code == 0
    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.execute(items.update().where(items.c.item_id == item_of(found, "P10", "ID_SEX_MISMATCH"))
                     .values(assignee="张三"))
    engine.dispose()
    return found


def config(tmp_path, port: int | None) -> str:
    path = tmp_path / "notify.yaml"
    relay = f"    host: 127.0.0.1\n    port: {port}\n" if port else ""
    path.write_text(f"notify:\n  base_url: https://custdq.example.com/\n  due_within_days: 2\n  smtp:\n{relay}"
                    "    sender: custdq@example.com\n", encoding="utf-8")
    return str(path)


def test_each_user_gets_one_message_of_their_items_through_the_relay(invoke, tmp_path, db, relay):
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    found = store_with_users(invoke, tmp_path, db)
    controller, handler = relay
    done = invoke("notify", "--as-of", "2026-11-21", "--db", db, "--config", config(tmp_path, controller.port))
    assert done.exit_code == 0, done.output
    assert "3 message(s) sent" in done.output and "李四" in done.output  # items to do, no address: said
    by = {m["To"]: m for m in handler.got}
    assert set(by) == {"zhangsan@example.com", "reviewer@example.com", "zhao@example.com"}
    mine = by["zhangsan@example.com"].get_content()
    waiting = item_of(found, "P11", "ID_SEX_MISMATCH")
    gd_open = found[(found["branch"] == GD) & (found["item_id"] != waiting)]["item_id"]
    assert all(i in mine for i in gd_open)  # theirs and the branch's unassigned, all new tonight
    assert item_of(found, "P11", "ID_SEX_MISMATCH") not in mine  # waiting for its review: the reviewer's
    assert "https://custdq.example.com/items/" in mine and "新发现" in by["zhangsan@example.com"]["Subject"]
    review = by["reviewer@example.com"].get_content()
    assert item_of(found, "P11", "ID_SEX_MISMATCH") in review and "待您复核" in review
    assert item_of(found, "P20", "ID_SEX_MISMATCH") in by["zhao@example.com"].get_content()
    assert item_of(found, "P20", "ID_SEX_MISMATCH") not in mine  # never another branch's
    for m in handler.got:  # no customer's data: names, numbers, phones
        text = m.as_string() + m.get_content()
        assert "13912340010" not in text and "P10" not in text and "女" not in text
    log = store_rows(db, access_log)
    mail = log[log["method"] == "MAIL"]
    assert set(mail["user_name"]) == {"张三", "复核王", "北京赵"}
    assert set(mail[mail["user_name"] == "张三"]["item_ids"].iloc[0].split(",")) == set(gd_open)

    # a later day: nothing new, the same items now overdue (due 2026-11-25 at the latest)
    handler.got.clear()
    done = invoke("notify", "--as-of", "2026-12-01", "--db", db, "--config", config(tmp_path, controller.port))
    assert done.exit_code == 0 and all("已逾期" in m["Subject"] and "新发现" not in m["Subject"]
                                       for m in handler.got if m["To"] != "reviewer@example.com")

    # the reviewer returns the settled item: the next message tells the one who settled it
    engine = sa.create_engine(db)
    with engine.begin() as conn:
        stored = {k: python_value(v) for k, v in conn.execute(sa.select(items).where(
            items.c.item_id == waiting)).mappings().one().items()}
        send_back(conn, stored, "复核王", "缺少客户签字", "2026-12-02T09:00:00+08:00", "web")
    engine.dispose()
    handler.got.clear()
    done = invoke("notify", "--as-of", "2026-12-02", "--db", db, "--config", config(tmp_path, controller.port))
    told = {m["To"]: m for m in handler.got}["zhangsan@example.com"]
    assert done.exit_code == 0 and "复核退回" in told["Subject"] and waiting in told.get_content()


def test_dry_run_writes_the_messages_and_a_missing_relay_is_a_clear_error(invoke, tmp_path, db):
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    store_with_users(invoke, tmp_path, db)
    refused = invoke("notify", "--as-of", "2026-11-21", "--db", db, "--config", config(tmp_path, None))
    assert refused.exit_code == 2 and "notify.smtp.host is not set" in refused.output and "Traceback" not in refused.output
    folder = tmp_path / "mail"
    done = invoke("notify", "--as-of", "2026-11-21", "--db", db, "--config", config(tmp_path, None),
                  "--dry-run", str(folder))
    assert done.exit_code == 0, done.output
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 3
    parsed = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]
    assert {m["To"] for m in parsed} == {"zhangsan@example.com", "reviewer@example.com", "zhao@example.com"}
    down = invoke("notify", "--as-of", "2026-11-21", "--db", db, "--config", config(tmp_path, free_port()))
    assert down.exit_code == 2 and "no reminder was sent" in down.output and "Traceback" not in down.output
