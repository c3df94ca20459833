"""Generate the broken-input corpus (issue 8): `python -m tests.corpus.make_corpus [DIR]`.

Every file is derived from the bundled synthetic sample, deterministically, so the corpus is
reproducible and never hand-edited (tests/test_corpus.py checks the committed files against
this script). EXPECTED says what `custdq run` must do with each: exit 0 with every unreadable
record quarantined and the manifest reconciled, or exit 2 with one line naming the file.
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

SAMPLE = Path(__file__).parent.parent.parent / "data" / "samples" / "policies_sample.csv"

# file -> (exit status, text expected in the one-line error, or rows quarantined at least)
EXPECTED = {
    "empty.csv": (2, "file is empty"),
    "header_only.csv": (0, 0),
    "random_bytes.csv": (2, "random_bytes.csv"),
    "gbk_cut_mid_character.csv": (0, 1),
    "unbalanced_quote.csv": (0, 0),
    "newline_in_quoted_field.csv": (0, 0),
    "utf16.csv": (0, 0),
    "cr_only_line_ends.csv": (0, 0),
    "one_megabyte_field.csv": (0, 0),
    "nul_bytes.csv": (0, 1),
    "duplicate_headers.csv": (2, "duplicate_headers.csv"),
    "cover_sheet.xlsx": (0, 0),
    "numeric_identity_numbers.xlsx": (0, 0),
}


def lines() -> tuple[str, str, str]:
    head, first, second = SAMPLE.read_text(encoding="utf-8").splitlines()[:3]
    return head, first, second


def build() -> dict[str, bytes]:
    head, first, second = lines()
    files: dict[str, bytes] = {}
    files["empty.csv"] = b""
    files["header_only.csv"] = (head + "\n").encode()
    rng = random.Random(20261124)
    files["random_bytes.csv"] = bytes(rng.getrandbits(8) for _ in range(4096))
    text = head + "\n" + first + "\n" + second
    last_cjk = max(i for i, ch in enumerate(text) if ord(ch) > 0x2E80)
    cut = len(text[:last_cjk].encode("gbk")) + 1  # half-way through the last Chinese character
    files["gbk_cut_mid_character.csv"] = text.encode("gbk")[:cut]
    files["unbalanced_quote.csv"] = (head + "\n" + first.replace(",", ',"', 1) + "\n" + second + "\n").encode()
    cells = first.split(",")
    cells[13] = '"广州市天河区\n体育西路1号"'  # 投保人联系地址 over two physical lines
    files["newline_in_quoted_field.csv"] = (head + "\n" + ",".join(cells) + "\n" + second + "\n").encode()
    files["utf16.csv"] = (head + "\n" + first + "\n" + second + "\n").encode("utf-16")
    files["cr_only_line_ends.csv"] = (head + "\r" + first + "\r" + second + "\r").encode()
    cells = first.split(",")
    cells[13] = "x" * 1_048_576
    files["one_megabyte_field.csv"] = (head + "\n" + ",".join(cells) + "\n" + second + "\n").encode()
    files["nul_bytes.csv"] = (head + "\n" + first + "\n").encode() + b"P1\x00\x00,20\x0026\n" + (second + "\n").encode()
    names = head.split(",")
    names[1] = names[0]
    files["duplicate_headers.csv"] = (",".join(names) + "\n" + first + "\n").encode()
    files["cover_sheet.xlsx"] = _xlsx(head, [first, second], cover=True)
    files["numeric_identity_numbers.xlsx"] = _xlsx(head, [first, second], numeric_ids=True)
    return files


def _xlsx(head: str, rows: list[str], cover: bool = False, numeric_ids: bool = False) -> bytes:
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    book.set_properties({"created": __import__("datetime").datetime(2026, 11, 24)})  # reproducible bytes
    if cover:
        sheet = book.add_worksheet("封面")
        sheet.write_string(0, 0, "保单提取 2026-11-20")
        sheet.write_string(1, 0, "说明：本文件由核心系统导出")
    sheet = book.add_worksheet("数据")
    names = head.split(",")
    for c, name in enumerate(names):
        sheet.write_string(0, c, name)
    for r, line in enumerate(rows, start=1):
        for c, value in enumerate(line.split(",")):
            if numeric_ids and names[c].endswith("证件号码") and value.isdigit():
                sheet.write_number(r, c, float(value))  # what Excel does to an 18-digit number
            else:
                sheet.write_string(r, c, value)
    book.close()
    return buffer.getvalue()


def main(folder: str | None = None) -> None:
    target = Path(folder) if folder else Path(__file__).parent
    for name, data in build().items():
        (target / name).write_bytes(data)
    print(f"wrote {len(EXPECTED)} files to {target}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
