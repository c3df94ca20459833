"""No plaintext identity number, phone or account anywhere a night leaves files (SPEC 5,
issue 8 item 3): outputs, worklists, Data Docs, the dashboard, the SQLite case store and its WAL,
the lock file, the hash key file (mode 0600), whatever lands in HOME or the temporary folder, and
every line on stderr with `-vv` (debug lines and SQLAlchemy's statements) - scanned for every such
number of the extract."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

DIGITS = re.compile(rb"\d{6,}[0-9Xx]?")


def numbers_in(path: Path) -> set[str]:
    """Digit runs in a file as a reader would see them: zip members (xlsx) unpacked, Parquet
    decoded, everything else as stored bytes."""
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as z:
            data = b"".join(z.read(name) for name in z.namelist())
    elif path.suffix == ".parquet":
        data = pd.read_parquet(path).to_csv().encode("utf-8")
    else:
        data = path.read_bytes()
    return {m.decode("ascii").upper() for m in DIGITS.findall(data)}


def index_text(url: str) -> str:
    """The contact index's rows as DuckDB returns them, its texts (the file is compressed: its raw
    bytes would hide plaintext)."""
    import pyarrow as pa

    from tests.helpers import contact_index

    with contact_index(url) as book:
        t = book.rows()
    keep = [f.name for f in t.schema if not pa.types.is_binary(f.type) and not pa.types.is_fixed_size_binary(f.type)]
    return str(t.select(keep).to_pylist())


def test_a_night_leaves_no_plaintext_numbers_anywhere(invoke, tmp_path, monkeypatch):
    sample = tmp_path / "in" / "night.csv"
    sample.parent.mkdir()
    agents = tmp_path / "in" / "agents.csv"
    assert invoke("sample", "--rows", "600", "--seed", "11", "--out", str(sample), "--agents-out", str(agents)).exit_code == 0
    extract = pd.read_csv(sample, dtype=str, keep_default_na=False)
    secrets = set()
    for column in ("投保人证件号码", "被保险人证件号码", "投保人手机", "被保险人电话", "缴费账号"):
        for value in extract[column]:
            digits = re.sub(r"[^0-9Xx]", "", value).upper()
            if len(digits) >= 7:
                secrets.add(digits)
                if digits.startswith("86") and len(digits) == 13:
                    secrets.add(digits[2:])
    assert len(secrets) > 1000
    monkeypatch.chdir(tmp_path)
    # the hash key from a key file (not the tests' environment variable); HOME and the temporary
    # folder inside tmp_path, so caches and temporary files are scanned too
    monkeypatch.delenv("CUSTDQ_HASH_KEY")
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    store = tmp_path / "store"
    output = []
    for date, verbosity in (("2026-11-19", "-vv"), ("2026-11-20", "-v")):
        result = invoke(verbosity, "run", str(sample), "--business-date", date, "--agents", str(agents), "--db",
                        f"sqlite:///{store / 'cases.db'}", "--out", str(tmp_path / "out" / date))
        assert result.exit_code == 0, result.output
        output.append(result.output)
    # the logs said something: rule counts, per-file reading details, SQL statements with parameters
    assert "DEBUG: custdq:" in output[0] and "sqlalchemy.engine" in output[0] and "INSERT INTO runs" in output[0]
    assert "rule ID_CHECKSUM: ok" in output[1] and "DEBUG" not in output[1]
    key_file = store / "hash.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key_text = key_file.read_bytes().strip()
    left = [p for p in tmp_path.rglob("*") if p.is_file() and tmp_path / "in" not in p.parents]
    assert any(p.name == "cases.db" for p in left) and any(p.suffix == ".xlsx" for p in left)
    for path in left:
        if path != key_file:
            assert key_text not in path.read_bytes(), path
        found = numbers_in(path) & secrets
        assert not found, (str(path.relative_to(tmp_path)), sorted(found)[:3])
    decoded = {m.upper() for m in re.findall(r"\d{6,}[0-9Xx]?", index_text(f"sqlite:///{store / 'cases.db'}"))}
    assert not decoded & secrets
    for text in output:
        assert not {m.upper() for m in re.findall(r"\d{6,}[0-9Xx]?", text)} & secrets
