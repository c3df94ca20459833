"""The key of the keyed hashes (HMAC-SHA-256) that stand in for phones, accounts and customers
in the case store (SPEC 5: no plaintext identity numbers, phones or accounts at rest).

The key lives outside the database: in the environment variable CUSTDQ_HASH_KEY, or in a key
file (config `hash_key_file`; by default next to an SQLite store, else ~/.custdq/hash.key)
created on first use with mode 0600.
The store remembers a fingerprint of the key it was built with, so a run with another key (a
lost or swapped key file) stops with a clear message instead of silently finding nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
import secrets
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.errors import InputError

ENV = "CUSTDQ_HASH_KEY"
DIGEST_BYTES = 16  # 128 bits: no collision in any customer book (birthday bound ~2^64 values)
MIN_ENV_KEY = 32


# what the operator is told when a key is created (one home: the night's and the load's notes)
KEEP = ("back it up, kept apart from the store's backups (without it the contact index can never be matched "
        "again; with a backup, it would let anyone test guesses of phones against the hashes)")

def key_path(configured: str | None, db_url: str | None) -> Path:
    """The key file: as configured, else beside the SQLite store's file, else ~/.custdq/hash.key.

    >>> str(key_path(None, "sqlite:////data/custdq/cases.db"))
    '/data/custdq/hash.key'
    >>> str(key_path("/etc/custdq/key", "sqlite:///x.db"))
    '/etc/custdq/key'
    """
    if configured:
        return Path(configured).expanduser()
    url = db_url or "sqlite:///.custdq/cases.db"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url[len("sqlite:///"):]).parent / "hash.key"
    return Path.home() / ".custdq" / "hash.key"


def source(key_file: str | Path) -> str:
    """Where the key is read from, for messages."""
    return f"the hash key in {ENV}" if os.environ.get(ENV) is not None else f"the hash key file {key_file}"


def load_key(key_file: str | Path, may_create: bool = True, notify=None) -> bytes:
    """The hash key: from CUSTDQ_HASH_KEY, else the key file, created 0600 when absent and
    `may_create` (a store that has no key yet); `notify` is told where it was created."""
    env = os.environ.get(ENV)
    if env is not None:
        if len(env) < MIN_ENV_KEY:
            raise InputError(f"{ENV}: the hash key must be at least {MIN_ENV_KEY} characters")
        return env.encode("utf-8")
    path = Path(key_file)
    if not path.exists() and not may_create:
        raise InputError(f"{path}: no hash key file there, but this case store was built with a key: restore "
                         f"the key file from the store's backup (or set {ENV} or hash_key_file); nothing was created")
    try:
        if not path.exists():
            key = _from_file(path)
            if notify:
                notify(f"created the hash key {path}: {KEEP}")
            return key
        return _from_file(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read or create the hash key file ({exc.strerror or type(exc).__name__})") from None


def _from_file(path: Path) -> bytes:
    try:
        info = path.stat()  # one look at the path: another process may create it at any moment
    except FileNotFoundError:
        return _create(path)
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: the hash key path exists and is not a file")
    if info.st_mode & 0o077:
        path.chmod(0o600)  # tighten a key file someone made readable to others
    key = path.read_bytes().strip()
    if len(key) < MIN_ENV_KEY:
        raise InputError(f"{path}: the hash key file is too short (at least {MIN_ENV_KEY} bytes)")
    return key


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    # written under a private temporary name and linked into place: another process starting at
    # the same moment either wins (and we read its key) or finds a complete file, never half of one
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return _from_file(path)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def fingerprint(key: bytes) -> str:
    """A public fingerprint of the key (stored in the case store to detect a swapped key)."""
    return hmac.digest(key, b"custdq key fingerprint", "sha256")[:8].hex()


def hmac_sha256(key: bytes):
    """A function text -> HMAC-SHA-256 (RFC 2104) truncated to DIGEST_BYTES, with the keyed inner
    and outer hash states computed once: 2.3x faster than `hmac.digest` per call, same result.

    >>> f = hmac_sha256(b"k" * 32)
    >>> f("+8613912345678") == hmac.digest(b"k" * 32, b"+8613912345678", "sha256")[:DIGEST_BYTES]
    True
    """
    block = 64
    k = hashlib.sha256(key).digest() if len(key) > block else key
    k = k.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))

    def digest(text: str | bytes, inner_copy=inner.copy, outer_copy=outer.copy) -> bytes:
        i = inner_copy()
        i.update(text.encode("utf-8") if isinstance(text, str) else text)
        o = outer_copy()
        o.update(i.digest())
        return o.digest()[:DIGEST_BYTES]

    return digest


PARALLEL_FROM = 200_000  # distinct values from which the second core hashes half


def _digest_all(key: bytes, texts: list[bytes]) -> list[bytes]:
    return list(map(hmac_sha256(key), texts))


def _start_helper(parent: int) -> None:
    """The forked helper dies with the process that forked it (pipeline.children) and holds no
    copy of the writer lock (a killed night's lock goes with it)."""
    from pipeline import children
    from pipeline.store.lock import close_inherited

    children.bind(parent)
    close_inherited()


def _digest_parallel(key: bytes, texts: list[bytes]) -> list[bytes]:
    """Hash a long list on two cores: a forked worker takes the second half (HMAC here is
    CPU-bound Python calls; the night's other stages leave the second core idle)."""
    if len(texts) < PARALLEL_FROM or (os.cpu_count() or 1) < 2 or multiprocessing.parent_process() is not None:
        # (in a chunk worker of pipeline.rows.chunks the cores are already shared out; those
        # workers are not daemons, so `current_process().daemon` does not tell)
        return _digest_all(key, texts)
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform
        return _digest_all(key, texts)
    half = len(texts) // 2
    with context.Pool(1, initializer=_start_helper, initargs=(os.getpid(),)) as pool:
        second = pool.apply_async(_digest_all, (key, texts[half:]))
        first = _digest_all(key, texts[:half])
        return first + second.get()


def keyed(key: bytes, values: pd.Series, as_hex: bool = False) -> pd.Series:
    """Keyed hash (HMAC-SHA-256, first 16 bytes) of each text value; missing stays missing.
    With `as_hex`, as hex text (each distinct digest turned into text once).

    Each distinct value is hashed once (phones and customers repeat across roles and policies).
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)  # the last slot (code -1) stays None
    # UTF-8 bytes straight out of Arrow (no per-value Python str, no encode)
    digests = _digest_parallel(key, pa.array(uniques, type=pa.string()).cast(pa.binary()).to_pylist())
    table[:-1] = [d.hex() for d in digests] if as_hex else digests
    return pd.Series(table[codes], index=values.index, dtype=object)
