"""Evidence attached to an item (issue 32, point 2; art. 13: the customer's documents and signed
confirmation, the channel's explanation, the investigator's signed report).

A file is taken when its first bytes say it is a PDF, a JPEG or a PNG (filetype, a maintained
reader of file signatures: the name and the type a browser claims are never trusted), within
`evidence.max_bytes`, and while its item holds fewer than `evidence.max_files`. It is kept in the
case store beside its item, under a random id, and goes with the item when the retention purge
destroys it (pipeline.retention.plan). Each one added is an `attached` event of the item.

A file is sealed before it is stored: AES-256-GCM (the `cryptography` package) under a key
derived from the store's hash key by HKDF-SHA-256 with this use's own label, a random 96-bit
nonce each, and the item's and the attachment's ids as associated data (a file moved to another
row does not open). A customer's identity card or signed confirmation is a picture or a PDF of
exactly the numbers the store keeps only as keyed hashes: at rest, in the store's files and its
backups, they are never readable without the key, which lives apart from the store.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import unicodedata

import filetype
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from checks.masking import mask_text
from pipeline.store.schema import attachments, item_events

KINDS = {"application/pdf": "pdf", "image/jpeg": "jpeg", "image/png": "png"}  # what a file may be
MEDIA = {v: k for k, v in KINDS.items()}
LISTED = ["attachment_id", "name", "kind", "size", "added_by", "added_at"]
SEALED = b"\x01"  # the stored content's format: this byte, the 12-byte nonce, AES-GCM's ciphertext and tag
NONCE_BYTES = 12


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


def key_of(hash_key: bytes) -> bytes:
    """The evidence key: 256 bits derived from the store's hash key for this use alone."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"custdq evidence v1").derive(hash_key)


def _bound(item_id: str, attachment_id: str) -> bytes:
    return f"{item_id}/{attachment_id}".encode("utf-8")


def seal(key: bytes, item_id: str, attachment_id: str, content: bytes) -> bytes:
    """`content` as it is stored: sealed with `key` (key_of), bound to its item and id."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return SEALED + nonce + AESGCM(key).encrypt(nonce, content, _bound(item_id, attachment_id))


def unseal(key: bytes, item_id: str, attachment_id: str, stored: bytes) -> bytes:
    """The file `seal` stored; ValueError when it does not open (another key, another row, altered)."""
    stored = bytes(stored)
    if not stored.startswith(SEALED) or len(stored) < 1 + NONCE_BYTES + 16:
        raise ValueError("not a sealed attachment")
    nonce = stored[1:1 + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, stored[1 + NONCE_BYTES:], _bound(item_id, attachment_id))
    except InvalidTag:
        raise ValueError("the attachment does not open with this key") from None


def kind_of(content: bytes) -> str:
    guess = filetype.guess(content[:8192]) if content else None
    if guess is None or guess.mime not in KINDS:
        raise Refusal("只接受 PDF、JPEG 或 PNG 文件（按文件内容判断，不看文件名）")
    return KINDS[guess.mime]


def add(conn: sa.Connection, item: dict, content: bytes, name: str | None, who: str, at: str, max_bytes: int,
        max_files: int, key: bytes) -> dict:
    """Keep `content` as evidence of `item` (the caller has checked who may), sealed with `key`
    (key_of), or Refusal."""
    if not content:
        raise Refusal("文件为空")
    if len(content) > max_bytes:
        raise Refusal(f"文件超过 {max_bytes // 1024} KiB 的上限")
    kind = kind_of(content)
    held = conn.execute(sa.select(sa.func.count()).select_from(attachments)
                        .where(attachments.c.item_id == item["item_id"])).scalar_one()
    if held >= max_files:
        raise Refusal(f"每件问题件最多 {max_files} 个附件")
    attachment_id = secrets.token_urlsafe(18)
    row = {"attachment_id": attachment_id, "item_id": item["item_id"], "name": clean_name(name, kind),
           "kind": kind, "size": len(content), "sha256": hashlib.sha256(content).hexdigest(),
           "content": seal(key, item["item_id"], attachment_id, content), "added_by": who, "added_at": at}
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


def content(conn: sa.Connection, item_id: str, attachment_id: str, key: bytes) -> dict | None:
    """One attachment of the item with its content unsealed, or None (an id of another item is
    none); ValueError when it does not open with `key`."""
    row = conn.execute(sa.select(attachments).where(attachments.c.item_id == item_id,
                                                    attachments.c.attachment_id == attachment_id)).mappings().first()
    if row is None:
        return None
    return {**row, "content": unseal(key, item_id, attachment_id, row["content"])}
