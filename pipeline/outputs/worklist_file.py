"""One worklist file as an Office Open XML workbook (ECMA-376, SpreadsheetML), written whole by
custdq: every part of the package is made here, so nothing depends on how a library lays out
its own output (the rows used to be spliced into XlsxWriter's sheet XML).

The package is the smallest one Excel, LibreOffice and openpyxl open without repair: content
types, relationships, workbook (one sheet; the filter's and the print titles' defined names),
styles (the default, the header, the teams' fill-in header, a read-only cell), the sheet, and
the document properties. The sheet's elements come in the order CT_Worksheet requires: sheetPr
(fit to page), dimension, sheetViews (frozen header and first column), sheetFormatPr, cols,
sheetData (the header row, then the data rows as `pieces` of ready XML), sheetProtection (when
some cells are read-only), autoFilter, dataValidations (the drop-downs), printOptions
(gridlines), pageMargins, pageSetup (A4 landscape, one page wide), headerFooter.

Read-only cells (ECMA-376 Part 1: a cell format's `protection`, the sheet's `sheetProtection`): the default
cell style and the default cell format are unlocked, so every cell, an empty one too, stays
editable on a protected sheet; only the headers and the cells written with READ_ONLY are
locked. A sheet with read-only cells is protected without a password (a guard against slips,
not a control: the import refuses what it must); filtering, sorting and formatting stay allowed
(Excel still sorts no range that holds a locked cell).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

COMPRESSION = 2  # zlib level of the sheet XML (pipeline/outputs/worklists.py says why)
ZIP64_ROWS = 500_000  # past this many rows a sheet's XML may pass 2 GiB
HEADER, FILL_IN, READ_ONLY = 1, 2, 3  # cell styles (styles.xml's cellXfs): headers, a locked grey cell
NOT_XML = re.compile(r"[\ud800-\udfff\ufffe\uffff]")  # no XML 1.0 character: lone surrogates, U+FFFE, U+FFFF
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument."


@dataclass(frozen=True)
class Column:
    title: str
    width: int  # in characters of the default font
    style: int = HEADER


@dataclass(frozen=True)
class Sheet:
    name: str
    columns: list[Column]
    lists: dict[int, list[str]]  # column index -> the drop-down's choices
    header: str  # the printed page's header and footer (header_footer)
    footer: str
    protected: bool = False  # some data cells are READ_ONLY: the sheet is protected


def col_name(index: int) -> str:
    """A zero-based column index as its letters.

    >>> col_name(0), col_name(24), col_name(26), col_name(701)
    ('A', 'Y', 'AA', 'ZZ')
    """
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _width(chars: int) -> float:
    """A column width in characters as SpreadsheetML stores it (ECMA-376 Part 1, 18.3.1.13:
    truncate((chars x max digit width + 5 px padding) / max digit width x 256) / 256, Calibri
    11's digit 7 px wide).

    >>> _width(20)
    20.7109375
    """
    return math.trunc((chars * 7 + 5) / 7 * 256) / 256


def hf_text(value: str, room: int) -> str:
    """A text for a page header/footer: '&' starts a control code there (&P, &G, ...), so a
    branch's '&' becomes a full-width '＆'; tabs, line breaks and control characters become
    spaces; cut to `room` UTF-16 units (Excel allows 255 in the whole string)."""
    value = re.sub(r"[\x00-\x1f\x7f]+", " ", NOT_XML.sub("", str(value))).replace("&", "＆").strip()
    return value.encode("utf-16-le")[: 2 * room].decode("utf-16-le", "ignore")


def header_footer(title: str, branch: str, business_date: str) -> tuple[str, str]:
    """The printed page's header (the sheet's title) and footer (branch, page n of N, business date).

    >>> header_footer("问题件清单", "广东分公司", "2026-11-20")
    ('&C问题件清单（广东分公司，业务日期 2026-11-20）', '&L广东分公司&C第 &P 页 / 共 &N 页&R业务日期 2026-11-20')
    >>> header_footer("问题件清单", "R&D", "")
    ('&C问题件清单（R＆D）', '&LR＆D&C第 &P 页 / 共 &N 页')
    """
    name, date = hf_text(branch, 120), hf_text(business_date, 10)
    about = "，".join(filter(None, [name, date and f"业务日期 {date}"]))
    header = f"&C{title}（{about}）" if about else f"&C{title}"
    footer = f"&L{name}&C第 &P 页 / 共 &N 页" + (f"&R业务日期 {date}" if date else "")
    return header, footer


def _quoted(sheet: str) -> str:
    """A sheet's name as a reference writes it: quoted unless it is letters, digits and _ only.

    >>> _quoted("问题件清单"), _quoted("a b"), _quoted("it's")
    ('问题件清单', "'a b'", "'it''s'")
    """
    return sheet if re.fullmatch(r"\w+", sheet) else "'" + sheet.replace("'", "''") + "'"


def _content_types() -> str:
    parts = [("/xl/workbook.xml", "spreadsheetml.sheet.main+xml"),
             ("/xl/worksheets/sheet1.xml", "spreadsheetml.worksheet+xml"),
             ("/xl/styles.xml", "spreadsheetml.styles+xml"),
             ("/docProps/app.xml", "extended-properties+xml")]
    overrides = "".join(f'<Override PartName="{p}" ContentType="{_CT}{t}"/>' for p, t in parts)
    return (_DECLARATION + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>' + overrides +
            '<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>')


def _relationships(targets: list[tuple[str, str]]) -> str:
    rels = "".join(f'<Relationship Id="rId{i}" Type="{kind}" Target="{target}"/>'
                   for i, (kind, target) in enumerate(targets, start=1))
    return _DECLARATION + f'<Relationships xmlns="{_PKG_REL}">{rels}</Relationships>'


def _workbook(sheet: Sheet, last_row: int) -> str:
    name, end = _quoted(sheet.name), col_name(len(sheet.columns) - 1)
    return (_DECLARATION + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><bookViews><workbookView/></bookViews>'
            f'<sheets><sheet name="{escape(sheet.name)}" sheetId="1" r:id="rId1"/></sheets><definedNames>'
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">'
            f'{escape(name)}!$A$1:${end}${last_row}</definedName>'
            f'<definedName name="_xlnm.Print_Titles" localSheetId="0">{escape(name)}!$1:$1</definedName>'
            '</definedNames></workbook>')


def _styles() -> str:
    font = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
    solid = '<fill><patternFill patternType="solid"><fgColor rgb="FF{}"/><bgColor indexed="64"/></patternFill></fill>'
    thin = "".join(f'<{side} style="thin"><color auto="1"/></{side}>' for side in ("left", "right", "top", "bottom"))
    unlocked, locked = '<protection locked="0"/>', '<protection locked="1"/>'
    return (_DECLARATION + f'<styleSheet xmlns="{_MAIN}">'
            f'<fonts count="2"><font>{font}</font><font><b/>{font}</font></fonts>'
            '<fills count="5"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
            f'</fill>{solid.format("DDEBF7")}{solid.format("FFF2CC")}{solid.format("E7E6E6")}</fills>'
            f'<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>'
            f'<border>{thin}<diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" applyProtection="1">'
            f'{unlocked}</xf></cellStyleXfs>'
            '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" applyProtection="1">'
            f'{unlocked}</xf>'
            '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" '
            f'applyBorder="1" applyAlignment="1" applyProtection="1"><alignment wrapText="1"/>{locked}</xf>'
            '<xf numFmtId="0" fontId="1" fillId="3" borderId="1" xfId="0" applyFont="1" applyFill="1" '
            f'applyBorder="1" applyProtection="1">{locked}</xf>'
            f'<xf numFmtId="0" fontId="0" fillId="4" borderId="0" xfId="0" applyFill="1" applyProtection="1">{locked}'
            '</xf></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
            '</cellStyles><dxfs count="0"/><tableStyles count="0"/></styleSheet>')


def _properties(sheet: Sheet) -> tuple[str, str]:
    app = (_DECLARATION + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
           'extended-properties"><Application>custdq</Application></Properties>')
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    core = (_DECLARATION + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
            'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f'<dc:title>{escape(sheet.name)}</dc:title><dcterms:created xsi:type="dcterms:W3CDTF">{now}'
            '</dcterms:created></cp:coreProperties>')
    return app, core


def _sheet_head(sheet: Sheet, last_row: int) -> str:
    end = col_name(len(sheet.columns) - 1)
    cols = "".join(f'<col min="{i}" max="{i}" width="{_width(c.width)}" customWidth="1"/>'
                   for i, c in enumerate(sheet.columns, start=1))
    titles = "".join(f'<c r="{col_name(i)}1" s="{c.style}" t="inlineStr"><is><t>{escape(c.title)}</t></is></c>'
                     for i, c in enumerate(sheet.columns))
    return (_DECLARATION + f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}"><sheetPr><pageSetUpPr fitToPage="1"/>'
            f'</sheetPr><dimension ref="A1:{end}{last_row}"/><sheetViews><sheetView tabSelected="1" '
            'workbookViewId="0"><pane xSplit="1" ySplit="1" topLeftCell="B2" activePane="bottomRight" '
            'state="frozen"/><selection pane="topRight" activeCell="B1" sqref="B1"/><selection pane="bottomLeft" '
            'activeCell="A2" sqref="A2"/><selection pane="bottomRight" activeCell="B2" sqref="B2"/></sheetView>'
            f'</sheetViews><sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols>'
            f'<sheetData><row r="1">{titles}</row>')


def _sheet_tail(sheet: Sheet, rows: int) -> str:
    end = col_name(len(sheet.columns) - 1)
    lists = ""
    if rows:
        lists = "".join(
            f'<dataValidation type="list" allowBlank="1" showInputMessage="1" showErrorMessage="1" '
            f'sqref="{col_name(c)}2:{col_name(c)}{rows + 1}"><formula1>"{escape(",".join(choices))}"</formula1>'
            '</dataValidation>' for c, choices in sheet.lists.items())
        lists = f'<dataValidations count="{len(sheet.lists)}">{lists}</dataValidations>'
    # protected: objects and scenarios as Excel's default; filter, sort and formatting allowed ("0": not protected)
    guard = ('<sheetProtection sheet="1" objects="1" scenarios="1" formatCells="0" formatColumns="0" formatRows="0" '
             'sort="0" autoFilter="0"/>') if sheet.protected else ""
    return (f'</sheetData>{guard}<autoFilter ref="A1:{end}{max(rows, 1) + 1}"/>{lists}<printOptions gridLines="1"/>'
            '<pageMargins left="0.25" right="0.25" top="0.55" bottom="0.55" header="0.2" footer="0.2"/>'
            '<pageSetup paperSize="9" orientation="landscape" fitToWidth="1" fitToHeight="0"/>'
            f'<headerFooter><oddHeader>{escape(sheet.header)}</oddHeader><oddFooter>{escape(sheet.footer)}'
            '</oddFooter></headerFooter></worksheet>')


def write_book(path: Path, sheet: Sheet, rows: int, pieces: Iterable[bytes]) -> None:
    """The workbook at `path`: `sheet`'s header row, then `rows` data rows whose <row> XML comes
    in `pieces` (rows 2 to rows + 1, in order); the file is written once, front to back."""
    app, core = _properties(sheet)
    small = [
        ("[Content_Types].xml", _content_types()),
        ("_rels/.rels", _relationships([(f"{_REL}/officeDocument", "xl/workbook.xml"),
                                        (f"{_PKG_REL}/metadata/core-properties", "docProps/core.xml"),
                                        (f"{_REL}/extended-properties", "docProps/app.xml")])),
        ("docProps/app.xml", app), ("docProps/core.xml", core),
        ("xl/workbook.xml", _workbook(sheet, max(rows, 1) + 1)),
        ("xl/_rels/workbook.xml.rels", _relationships([(f"{_REL}/worksheet", "worksheets/sheet1.xml"),
                                                       (f"{_REL}/styles", "styles.xml")])),
        ("xl/styles.xml", _styles()),
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESSION) as z:
        for name, text in small:
            z.writestr(name, text.encode("utf-8"))
        # opened by name, the member takes the file's compression level; a sheet near Excel's
        # row limit can pass 2 GiB of XML: Zip64 then
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=rows + 1 > ZIP64_ROWS) as fh:
            fh.write(_sheet_head(sheet, rows + 1).encode("utf-8"))
            for piece in pieces:
                fh.write(piece)
            fh.write(_sheet_tail(sheet, rows).encode("utf-8"))
