"""Data Docs that open inside a network without internet (issue 15, point 9).

Great Expectations' page templates link bootstrap, bootstrap-table, bootstrap-datepicker,
jQuery, Popper, Font Awesome, a dark theme and three chart libraries from six CDNs, show GX's
logo from its web bucket and end every page with a newsletter footer. Behind an insurer's
firewall such a page renders unstyled and the browser tries the outside hosts on every visit.
After GX has written the site, `localise` turns it into a folder that needs nothing outside
itself:

- each stylesheet and script GX links is replaced by the same release from the npm registry,
  vendored with custdq in `pipeline/outputs/data_docs_static/` (`vendor.sh` rebuilds it; `SOURCES.txt`
  lists package, version, licence and checksum of every file) and copied into
  `data_docs/static/custdq/`, linked by relative paths, so a copied folder still works;
- GX's logo points to the copy GX itself writes into `data_docs/static/images/`;
- the chart libraries (vega, vega-lite, vega-embed) are dropped: only GX's graph blocks call
  them and custdq's suite renders none;
- footers with outside links (the newsletter, the tutorials) and forms posting outside are
  removed, other outside hyperlinks become their plain text, and any outside reference left
  in an attribute or a CSS `url()` is emptied, so no page names an outside host at all;
- a reference into GX's static folder that misses it is pointed at the file (GX 1.x puts a
  validation page's favicon one folder too high);
- of GX's own static files (4 MB of fonts, GIFs and pictures) only those a page uses are kept.

>>> page = '<script src="https://code.jquery.com/jquery-3.7.1.min.js" crossorigin="anonymous"></script>'
>>> _rewrite(page, "static/custdq", "static/images", [])
'<script src="static/custdq/jquery/jquery.min.js"></script>'
>>> _rewrite('<p>By <a href="https://greatexpectations.io">GX</a>.</p>', "x", "y", [])
'<p>By GX.</p>'
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

VENDORED = Path(__file__).with_name("data_docs_static")
TARGET = "static/custdq"  # inside data_docs/
GX_IMAGES = "static/images"  # where GX's site builder copies its own pictures

_CDN = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": ["bootstrap/bootstrap.min.css"],
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": ["bootstrap/bootstrap.min.js"],
    "https://code.jquery.com/jquery-3.7.1.min.js": ["jquery/jquery.min.js"],
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": ["popper.js/popper.min.js"],
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": ["bootstrap-table/bootstrap-table.min.css"],
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": ["bootstrap-table/bootstrap-table.min.js"],
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        ["bootstrap-table/bootstrap-table-filter-control.min.js"],
    # the templates ask for 1.19.0's stylesheet of the extension (two lines of CSS) beside 1.19.1's script
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        ["bootstrap-table/bootstrap-table-filter-control.min.css"],
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        ["bootstrap-table/bootstrap-table-filter-control.min.css"],
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        ["bootstrap-datepicker/bootstrap-datepicker.min.css"],
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        ["bootstrap-datepicker/bootstrap-datepicker.min.js"],
    # all.min.css = the core plus every style; the pages use the solid icons only
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        ["fontawesome-free/css/fontawesome.min.css", "fontawesome-free/css/solid.min.css"],
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        ["bootstrap-dark/bootstrap-prefers-dark.min.css"],
}
CHARTS = {"https://cdn.jsdelivr.net/npm/vega@5", "https://cdn.jsdelivr.net/npm/vega-lite@5",
          "https://cdn.jsdelivr.net/npm/vega-embed@6"}
_GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
_PICTURES = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}

_OUTSIDE = r"(?:https?:)?//"
_TAG = re.compile(r"<(link|script|img)\b([^>]*)>(?:(?<=>)(\s*</script\s*>))?", re.I | re.S)
_ATTR = re.compile(r"""\b(src|href)\s*=\s*(["'])(.*?)\2""", re.I | re.S)
_FOOTER = re.compile(r"<footer\b.*?</footer\s*>", re.I | re.S)
_FORM = re.compile(r"<form\b.*?</form\s*>", re.I | re.S)
_LINK = re.compile(rf"""<a\b[^>]*\bhref\s*=\s*(["']){_OUTSIDE}.*?\1[^>]*>(.*?)</a\s*>""", re.I | re.S)
_CSS_URL = re.compile(rf"""url\(\s*(["']?)({_OUTSIDE}[^"')]*)\1\s*\)""", re.I)
_LEFT = re.compile(rf"""\b(src|href|action|data|poster|srcset)\s*=\s*(["']){_OUTSIDE}.*?\2""", re.I | re.S)
_STATIC_REF = re.compile(r"""\b(src|href)\s*=\s*(["'])((?:\.\./|\./)*static/[^"'?#]+)\2""", re.I)
_LOCAL_REF = re.compile(r"""(?:\b(?:src|href)\s*=\s*\\?["']|url\(\s*["']?)([^"'\\)#?]+)""", re.I)


def localise(docs: Path) -> dict:
    """Rewrite every HTML page under `docs` (a Data Docs site GX has just written) to local
    copies; returns the pages rewritten and the outside references dropped without a copy."""
    docs = Path(docs)
    _copy_vendored(docs / TARGET)
    dropped: list[str] = []
    pages = sorted(docs.rglob("*.html"))
    for page in pages:
        up = os.path.relpath(docs, page.parent).replace(os.sep, "/")
        prefix = "" if up == "." else up + "/"
        html = _rewrite(page.read_text(encoding="utf-8"), prefix + TARGET, prefix + GX_IMAGES, dropped)
        page.write_text(_repair(html, page, docs, prefix), encoding="utf-8")
    _prune(docs, pages)
    return {"pages": len(pages), "dropped": sorted(set(dropped))}


def _copy_vendored(target: Path) -> None:
    """The vendored files into `target` as new files and folders, so the user's umask decides
    their modes (copytree would give them the installed package's, 0644 and 0755 under a
    umask of 077)."""
    for source in sorted(VENDORED.rglob("*")):
        if source.is_file() and source.name != "vendor.sh":
            dest = target / source.relative_to(VENDORED)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)


def _rewrite(html: str, vendor: str, images: str, dropped: list[str]) -> str:
    """One page with every outside reference made local or removed (`vendor` and `images`:
    the page's relative paths to the vendored files and to GX's pictures)."""

    def picture(url: str) -> str | None:
        name = url.split("?")[0]
        if name.startswith(_GX_ASSETS) and name[len(_GX_ASSETS):] in _PICTURES:
            return f"{images}/{_PICTURES[name[len(_GX_ASSETS):]]}"
        return None

    def tag(m: re.Match) -> str:
        kind, attrs = m.group(1).lower(), m.group(2)
        ref = _ATTR.search(attrs)
        if ref is None or not re.match(_OUTSIDE, ref.group(3), re.I):
            return m.group(0)
        url = ref.group(3)
        if kind == "img":
            local = picture(url)
            if local:
                return m.group(0).replace(url, local)
        elif url.split("?")[0] in _CDN:
            files = _CDN[url.split("?")[0]]
            if kind == "script":
                return "\n".join(f'<script src="{vendor}/{f}"></script>' for f in files)
            if re.search(r"""\brel\s*=\s*["']?stylesheet""", attrs, re.I):
                return "\n".join(f'<link rel="stylesheet" href="{vendor}/{f}">' for f in files)
        if url not in CHARTS:
            dropped.append(url)
        return ""

    def css(m: re.Match) -> str:
        local = picture(m.group(2))
        if local is None:
            dropped.append(m.group(2))
        return f"url('{local}')" if local else "none"

    def left(m: re.Match) -> str:
        dropped.append(m.group(0))
        return f"{m.group(1)}={m.group(2)}{m.group(2)}"

    html = _FOOTER.sub(lambda m: "" if re.search(rf"""href\s*=\s*["']{_OUTSIDE}""", m.group(0), re.I)
                       else m.group(0), html)
    html = _FORM.sub(lambda m: "" if re.search(rf"""action\s*=\s*["']{_OUTSIDE}""", m.group(0), re.I)
                     else m.group(0), html)
    html = _TAG.sub(tag, html)
    html = _LINK.sub(lambda m: m.group(2), html)
    html = _CSS_URL.sub(css, html)
    return _LEFT.sub(left, html)


def _repair(html: str, page: Path, docs: Path, prefix: str) -> str:
    """A reference to GX's static folder that misses it (GX 1.x points a validation page's
    favicon one folder too high) is pointed at the file that exists."""

    def fix(m: re.Match) -> str:
        ref = m.group(3)
        if (page.parent / ref).exists() or not (docs / ref[ref.index("static/"):]).exists():
            return m.group(0)
        return f"{m.group(1)}={m.group(2)}{prefix}{ref[ref.index('static/'):]}{m.group(2)}"

    return _STATIC_REF.sub(fix, html)


def _prune(docs: Path, pages: list[Path]) -> None:
    """Remove GX's static files that no page refers to (the vendored folder stays whole: its
    stylesheets load their own fonts)."""
    used: set[Path] = set()
    for page in pages:
        for ref in _LOCAL_REF.findall(page.read_text(encoding="utf-8")):
            if not re.match(r"[a-z][a-z0-9+.-]*:", ref, re.I):
                used.add((page.parent / ref.strip()).resolve())
    static, keep = docs / "static", (docs / TARGET).resolve()
    if not static.is_dir():
        return
    for path in sorted(static.rglob("*"), reverse=True):
        resolved = path.resolve()
        if resolved == keep or keep in resolved.parents:
            continue
        if path.is_file() and resolved not in used:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
