"""Data Docs that open inside a network without internet (issue 15, point 9): after a real
night, no page of `data_docs/` names an outside host; the stylesheets, scripts and icon font GX
links from CDNs are vendored copies (checksums as in `pipeline/outputs/data_docs_static/SOURCES.txt`)
listed in the manifest; the newsletter and tutorial footers are gone. A real headless Chromium
(Debian's `chromium`, as in the dashboard test) opens `index.html` and a validation-result page
of a *copied* folder: every request stays inside that folder, no console or page error, and
the pages are styled by the vendored bootstrap and icon font. Screenshots in
`test-artifacts/`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.outputs.datadocs import VENDORED, _rewrite, localise
from tests.helpers import ARTIFACTS, CHROMIUM

OUTSIDE = re.compile(r"https?://|(?:src|href|action)\s*=\s*[\"']//|url\(\s*[\"']?//", re.I)


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    """One real night on a generated sample; the night's output folder."""
    tmp = tmp_path_factory.mktemp("datadocs")
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTDQ_DEBUG", "1")
        mp.setenv("CUSTDQ_HASH_KEY", "custdq-test-key-0123456789abcdef0123456789")
        sample = tmp / "night.csv"
        assert runner.invoke(cli, ["sample", "--rows", "300", "--seed", "11", "--out", str(sample)]).exit_code == 0
        out = tmp / "out"
        result = runner.invoke(cli, ["run", str(sample), "--business-date", "2026-11-20", "--out", str(out),
                                     "--db", f"sqlite:///{tmp / 'cases.db'}", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def vendored_checksums() -> dict[str, str]:
    rows = (line.split() for line in (VENDORED / "SOURCES.txt").read_text(encoding="utf-8").splitlines())
    return {r[-3]: r[-1] for r in rows if len(r) >= 5 and re.fullmatch(r"[0-9a-f]{64}", r[-1])}


def test_no_page_names_an_outside_host(night):
    docs = night / "data_docs"
    pages = sorted(docs.rglob("*.html"))
    assert len(pages) == 3  # index, the suite, tonight's validation result
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert not OUTSIDE.search(html), (page.name, OUTSIDE.search(html))
        assert "newsletter" not in html.lower() and "ge-cta-footer\"" not in html and "<form" not in html
        assert "static/custdq/bootstrap/bootstrap.min.css" in html and "jquery.min.js" in html
        # every local file a page refers to exists, relative to the page
        for ref in re.findall(r"""(?:src|href)\s*=\s*["']([^"'#?]+\.(?:css|js|png|ico|woff2))""", html):
            assert (page.parent / ref).resolve().is_file(), (page.name, ref)


def test_the_vendored_files_are_the_packages_own_and_in_the_manifest(night):
    manifest = json.loads((night / "manifest.json").read_text(encoding="utf-8"))
    listed = manifest["outputs"]
    checksums = vendored_checksums()
    assert len(checksums) == 14 and "jquery/jquery.min.js" in checksums
    for name, sha in checksums.items():
        assert listed[f"data_docs/static/custdq/{name}"]["sha256"] == sha, name
    assert "data_docs/static/custdq/LICENSES/jquery.txt" in listed
    # of GX's own 4 MB of static files only what a page shows is kept
    gx_static = sorted(n for n in listed if n.startswith("data_docs/static/") and "/custdq/" not in n)
    assert gx_static == ["data_docs/static/images/favicon.ico", "data_docs/static/images/logo-long.png"]
    docs_bytes = sum(v["bytes"] for n, v in listed.items() if n.startswith("data_docs/"))
    assert docs_bytes < 1_400_000, docs_bytes


def test_outside_references_without_a_copy_are_dropped_and_reported(tmp_path):
    dropped: list[str] = []
    html = ('<link rel="stylesheet" href="https://cdn.example.org/x.css"><script src="//cdn.example.org/y.js">'
            '</script><script src="https://cdn.jsdelivr.net/npm/vega@5"></script>'
            '<form action="https://mail.example.org/subscribe"><input name="e"></form>'
            '<footer><a href="https://example.org/news">news</a></footer>'
            '<style>.a{background:url("https://example.org/bg.png")}</style><iframe src="https://example.org/f"></iframe>'
            '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1">')
    out = _rewrite(html, "../static/custdq", "../static/images", dropped)
    assert not OUTSIDE.search(out), out
    assert out == ('<style>.a{background:none}</style><iframe src=""></iframe>'
                   '<img src="../static/images/logo-long.png">')
    assert "https://cdn.example.org/x.css" in dropped and "//cdn.example.org/y.js" in dropped
    assert not any("vega" in d for d in dropped)  # the chart libraries are left out on purpose
    # a real night's pages need nothing that custdq does not ship
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "p.html").write_text('<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>')
    assert localise(docs) == {"pages": 1, "dropped": []}
    assert (docs / "sub" / "p.html").read_text() == '<script src="../static/custdq/jquery/jquery.min.js"></script>'
    assert (docs / "static/custdq/jquery/jquery.min.js").is_file()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_chromium_opens_a_copied_data_docs_folder_offline_and_styled(night, tmp_path):
    from playwright.sync_api import sync_playwright

    copy = tmp_path / "elsewhere" / "docs"  # a copied folder still works: every path is relative
    shutil.copytree(night / "data_docs", copy)
    inside = copy.resolve().as_uri() + "/"
    validation = next((copy / "validations").rglob("*.html"))
    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        for name, path in (("index", copy / "index.html"), ("validation", validation)):
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            problems, requests = [], []
            page.on("console", lambda m, problems=problems: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e, problems=problems: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r, problems=problems: problems.append(f"failed: {r.url}"))
            page.on("request", lambda r, requests=requests: requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.evaluate("document.fonts.ready")
            seen[name] = {
                "problems": problems, "requests": requests, "text": page.inner_text("body"),
                "navbar": page.eval_on_selector("nav.navbar", "e => getComputedStyle(e).display"),
                "padding": page.eval_on_selector(".container-fluid", "e => getComputedStyle(e).paddingLeft"),
                "icon_font": page.evaluate("""() => [...document.fonts].filter(f => f.family.includes('Font Awesome'))
                                                 .map(f => f.status)"""),
                "icon_family": page.evaluate("""() => { const i = document.querySelector('i.fas');
                                                 return i ? getComputedStyle(i).fontFamily : null }"""),
                "rows": page.locator("table tbody tr").count(),
            }
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"data_docs_{name}.png"), full_page=True)
            page.close()
        browser.close()
    for name, s in seen.items():
        assert s["problems"] == [], (name, s["problems"])
        assert s["requests"] and all(u.startswith(inside) for u in s["requests"]), (name, s["requests"])
        assert any(u.endswith("static/custdq/bootstrap/bootstrap.min.css") for u in s["requests"])
        assert s["navbar"] == "flex", name  # bootstrap's .navbar, from the vendored stylesheet
        assert s["padding"] == "48px", name  # bootstrap's .pl-5 on the page's container
        assert "Font Awesome 6 Free" in s["icon_family"] and "loaded" in s["icon_font"], (name, s["icon_font"])
        assert s["rows"] >= 1, name
    assert "custdq_night" in seen["index"]["text"]  # bootstrap-table drew the list of validations
    assert "volume_ratio" in seen["validation"]["text"]
