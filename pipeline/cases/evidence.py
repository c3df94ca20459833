"""Evidence attached to an item (issue 32, point 2; art. 13: the customer's documents and signed
confirmation, the channel's explanation, the investigator's signed report).

A file is taken when its first bytes say it is a PDF, a JPEG or a PNG (filetype, a maintained
reader of file signatures: the name and the type a browser claims are never trusted), within
`evidence.max_bytes`, and while its item holds fewer than `evidence.max_files`. It is kept in the
case store beside its item, under a random id, and goes with the item when the retention purge
destroys it (pipeline.retention.plan). Each one added is an `attached` event of the item.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import unicodedata

import filetype
import sqlalchemy as sa

from checks.masking import mask_text
from pipeline.store.schema import attachments, item_events

KINDS = {"application/pdf": "pdf", "image/jpeg": "jpeg", "image/png": "png"}  # what a file may be
MEDIA = {v: k for k, v in KINDS.items()}
LISTED = ["attachment_id", "name", "kind", "size", "added_by", "added_at"]


class Refusal(ValueError):
    """Why a file is not taken (Chinese, for the person who sent it)."""


def clean_name(name: str | None, kind: str) -> str:
    """The file's name as shown and stored: its last path part, printable characters only, digit
    runs masked as a note's are (people name scans after the customer's number), at most 120
    characters, with the extension of what it is."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] not in "CZ" or c == " ")
    stem = re.sub(r"\.(pdf|jpe?g|png)$", "", base.strip(), flags=re.IGNORECASE)[:100] or "附件"
    return f"{mask_text(stem)}.{'jpg' if kind == 'jpeg' else kind}"


def kind_of(content: bytes) -> str:
    guess = filetype.guess(content[:8192]) if content else None
    if guess is None or guess.mime not in KINDS:
        raise Refusal("只接受 PDF、JPEG 或 PNG 文件（按文件内容判断，不看文件名）")
    return KINDS[guess.mime]


def add(conn: sa.Connection, item: dict, content: bytes, name: str | None, who: str, at: str, max_bytes: int,
        max_files: int) -> dict:
    """Keep `content` as evidence of `item` (the caller has checked who may), or Refusal."""
    if not content:
        raise Refusal("文件为空")
    if len(content) > max_bytes:
        raise Refusal(f"文件超过 {max_bytes // 1024} KiB 的上限")
    kind = kind_of(content)
    held = conn.execute(sa.select(sa.func.count()).select_from(attachments)
                        .where(attachments.c.item_id == item["item_id"])).scalar_one()
    if held >= max_files:
        raise Refusal(f"每件问题件最多 {max_files} 个附件")
    row = {"attachment_id": secrets.token_urlsafe(18), "item_id": item["item_id"], "name": clean_name(name, kind),
           "kind": kind, "size": len(content), "sha256": hashlib.sha256(content).hexdigest(), "content": content,
           "added_by": who, "added_at": at}
    conn.execute(attachments.insert().values(**row))
    conn.execute(item_events.insert().values(
        item_id=item["item_id"], at=at, who=who, night=None, action="attached", before=None, source="web",
        what=json.dumps({"attachment": [None, row["name"]], "size": [None, len(content)]}, ensure_ascii=False)))
    return {k: row[k] for k in LISTED}


def listed(conn: sa.Connection, item_id: str) -> list[dict]:
    """The item's attachments (not their content), oldest first."""
    return [dict(r) for r in conn.execute(sa.select(*[attachments.c[c] for c in LISTED])
                                          .where(attachments.c.item_id == item_id)
                                          .order_by(attachments.c.added_at, attachments.c.attachment_id)).mappings()]


def content(conn: sa.Connection, item_id: str, attachment_id: str) -> dict | None:
    """One attachment of the item with its content, or None (an id of another item is none)."""
    row = conn.execute(sa.select(attachments).where(attachments.c.item_id == item_id,
                                                    attachments.c.attachment_id == attachment_id)).mappings().first()
    return dict(row) if row is not None else None
