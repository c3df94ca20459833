"""Evidence on an item (issue 32, point 2): a branch user attaches PDF, JPEG and PNG files in the
web app (a real `custdq serve`, multipart forms as a browser sends them); the type is read from
the content, the limits hold, the name is masked; the files are listed with who and when,
downloaded by whoever may see the item and by nobody else, and every download is a row of the
access log. On a real SQLite file and on the PostgreSQL server."""

from __future__ import annotations

import os
import re
import secrets
import subprocess

import pytest

from pipeline.store.schema import access_log, attachments
from tests.helpers import item_of, png, policy, postgres_url, read_outputs, store_rows, write_csv
from tests.webserve import CUSTDQ, Client, Server, csrf_of, prepare

GD, BJ = "广东分公司", "北京分公司"
PASSWORDS = {"gd": "gd-password-1", "bj": "bj-password-1", "boss": "boss-password-1"}


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def multipart(fields: dict[str, str], name: str, content: bytes, claimed: str) -> tuple[bytes, str]:
    boundary = "----custdq" + secrets.token_hex(8)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: {claimed}\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory):
    """One night and one server for the module; each test attaches to items of its own."""
    tmp_path = tmp_path_factory.mktemp(f"evidence-{request.param}")
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    db = f"sqlite:///{tmp_path / 'cases.db'}" if request.param == "sqlite" else postgres_url()
    rows = [policy(f"P{n}", n, applicant_sex="女", branch=GD) for n in (10, 11, 12)]  # an item for each test
    rows.append(policy("P20", 20, applicant_sex="女", branch=BJ))
    done = prepare("run", str(write_csv(tmp_path / "n1.csv", rows)), "--business-date", "2026-11-20", "--out",
                   str(tmp_path / "o1"), "--quiet", "--db", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name, role, branch in (("gd", "branch", GD), ("bj", "branch", BJ), ("boss", "manager", None)):
        added = prepare("users", "add", name, "--role", role, *(["--branch", branch] if branch else []), "--db", db,
                        stdin=f"{PASSWORDS[name]}\n{PASSWORDS[name]}\n", cwd=tmp_path)
        assert added.returncode == 0, added.stderr
    config = tmp_path / "evidence.yaml"
    config.write_text("evidence:\n  max_bytes: 4096\n  max_files: 3\n", encoding="utf-8")
    server = Server(db, tmp_path, "--config", str(config))
    yield {"server": server, "db": db, "found": read_outputs(tmp_path / "o1")[0], "folder": tmp_path}
    server.stop()


def browser(site, who: str) -> Client:
    client = Client(site["server"].base)
    assert client.login(who, PASSWORDS[who]) == 303
    return client


def upload(client: Client, item_id: str, name: str, content: bytes, claimed: str = "application/octet-stream"):
    page = client.call("GET", f"/items/{item_id}")[2]
    body, kind = multipart({"csrf": csrf_of(page)}, name, content, claimed)
    req_status, headers, text = client.call("POST", f"/items/{item_id}/attachments", headers={"Content-Type": kind},
                                            raw=body)
    return req_status, headers, text


def test_files_are_taken_by_their_content_within_the_limits(site):
    gd = browser(site, "gd")
    item = item_of(site["found"], "P10", "ID_SEX_MISMATCH")
    status, headers, _ = upload(gd, item, "客户13912345678身份证.png", png(), "image/png")
    assert status == 303, _
    assert upload(gd, item, "confirmation.PDF", PDF, "application/pdf")[0] == 303
    # refused, with why, nothing kept: text named .pdf, a program named .jpg, too large, too many
    status, _, page = upload(gd, item, "note.pdf", b"just some text, not a PDF at all", "application/pdf")
    assert status == 422 and "只接受 PDF、JPEG 或 PNG" in page
    assert upload(gd, item, "photo.jpg", b"MZ\x90\x00" + b"\x00" * 60, "image/jpeg")[0] == 422
    status, _, page = upload(gd, item, "big.png", png() + b"\x00" * 5000, "image/png")
    assert status == 422 and "上限" in page
    assert upload(gd, item, "scan.jpg", JPEG, "image/jpeg")[0] == 303
    status, _, page = upload(gd, item, "more.jpg", JPEG, "image/jpeg")
    assert status == 422 and "最多 3 个附件" in page
    kept = store_rows(site["db"], attachments)
    kept = kept[kept["item_id"] == item]
    assert sorted(kept["kind"]) == ["jpeg", "pdf", "png"] and set(kept["added_by"]) == {"gd"}
    assert "13912345678" not in "".join(kept["name"]) and all(n.endswith((".png", ".pdf", ".jpg")) for n in kept["name"])
    assert upload(browser(site, "boss"), item, "x.png", png(), "image/png")[0] == 403  # a manager attaches nothing
    other = item_of(site["found"], "P20", "ID_SEX_MISMATCH")
    assert upload(gd, other, "x.png", png(), "image/png")[0] == 404  # another branch's item


def test_attachments_are_listed_downloaded_by_who_may_see_them_and_logged(site):
    gd = browser(site, "gd")
    item = item_of(site["found"], "P11", "ID_SEX_MISMATCH")
    assert upload(gd, item, "signed.pdf", PDF, "application/pdf")[0] == 303
    page = gd.call("GET", f"/items/{item}")[2]
    links = re.findall(rf'href="(/items/{item}/attachments/[^"]+)"', page)
    assert len(links) == 1 and "signed.pdf" in page and "gd" in page
    status, headers, _ = gd.call("GET", links[0])
    assert status == 200 and headers["content-type"] == "application/pdf"
    assert headers["content-disposition"].startswith("attachment;") and headers["cache-control"] == "no-store"
    raw = gd.opener.open(gd.base + links[0]).read()
    assert raw == PDF
    assert browser(site, "boss").call("GET", links[0])[0] == 200  # a manager sees every branch
    assert browser(site, "bj").call("GET", links[0])[0] == 404  # never across a branch
    other = item_of(site["found"], "P10", "ID_SEX_MISMATCH")
    assert gd.call("GET", links[0].replace(item, other))[0] == 404  # an id under another item is none
    log = store_rows(site["db"], access_log)
    downloads = log[log["path"].str.contains("/attachments/") & (log["method"] == "GET")]
    assert set(downloads["user_name"]) == {"gd", "boss", "bj"}
    assert set(downloads[downloads["status"] == 200]["item_ids"]) == {item}


def test_files_are_sealed_at_rest_and_open_only_with_the_stores_key_in_their_own_row(site):
    """A signed confirmation carries the customer's identity number in its text: in the store it
    is AES-GCM ciphertext (no plaintext, not even the PDF's header), it opens with the key derived
    from the store's hash key and only in its own row; `custdq serve` without that key stops
    with a clear error."""
    import sqlalchemy as sa

    from pipeline.cases import evidence

    secret = b"11010519491231002X"
    confirmation = PDF.replace(b"trailer", b"(ID " + secret + b") trailer")
    gd = browser(site, "gd")
    item = item_of(site["found"], "P12", "ID_SEX_MISMATCH")
    assert upload(gd, item, "signed-confirmation.pdf", confirmation, "application/pdf")[0] == 303
    kept = store_rows(site["db"], attachments)
    row = kept[(kept["item_id"] == item) & (kept["name"] == "signed-confirmation.pdf")].iloc[0]
    stored = bytes(row["content"])
    assert secret not in stored and b"%PDF" not in stored and len(stored) == len(confirmation) + 29
    key = evidence.key_of(os.environ["CUSTDQ_HASH_KEY"].encode("utf-8"))
    assert evidence.unseal(key, item, row["attachment_id"], stored) == confirmation
    for wrong in ((key, "DQ0000000000000000", row["attachment_id"]), (evidence.key_of(b"x" * 32), item,
                                                                       row["attachment_id"])):
        with pytest.raises(ValueError):
            evidence.unseal(wrong[0], wrong[1], wrong[2], stored)
    link = f"/items/{item}/attachments/{row['attachment_id']}"
    assert gd.opener.open(gd.base + link).read() == confirmation  # served as it was sent
    engine = sa.create_engine(site["db"])
    with engine.connect() as conn:
        files = conn.execute(sa.select(attachments.c.content)).scalars().all()
    engine.dispose()
    assert files and not any(secret in bytes(f) or bytes(f).startswith((b"%PDF", b"\x89PNG", b"\xff\xd8")) for f in files)

    env = {k: v for k, v in os.environ.items() if k != "CUSTDQ_HASH_KEY"}
    env["HOME"] = str(site["folder"])  # no ~/.custdq/hash.key there either
    refused = subprocess.run([CUSTDQ, "serve", "--db", site["db"], "--port", "1"], capture_output=True, text=True,
                             cwd=site["folder"], env=env, timeout=120)
    assert refused.returncode == 2 and "hash key" in refused.stderr and "Traceback" not in refused.stderr
