"""dashboard.html: one self-contained page with Chinese labels, written atomically. Aggregates
only. Its charts are Apache ECharts (pipeline/outputs/dashboard/charts.py), the library and the
page's small script inline, so the file opens offline; its own Content-Security-Policy allows
exactly those two scripts (by their sha256) and nothing fetched from anywhere."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection
from functools import cache
from html import escape
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from checks.masking import mask_text
from pipeline import clock
from pipeline.outputs.dashboard import charts
from pipeline.outputs.dashboard.data import AGEING, Board, gather
from pipeline.outputs.dashboard.progress import PROGRESS
from pipeline.cases.labels import RULE_STATUS_NAMES, SEVERITY_NAMES, expectation_title

ASSETS = Path(__file__).resolve().with_name("assets")  # the web app serves them too, as /static/dashboard/
ECHARTS = ASSETS / "echarts.min.js"
SCRIPT = ASSETS / "dashboard.js"

STYLE = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:2px solid #2F6DB5;padding-bottom:4px}
.sub{color:#666;font-size:13px} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:130px}
.card .v{font-size:24px;font-weight:bold} .card .k{font-size:12px;color:#666}
.warnings{background:#fff4f4;border:1px solid #e0b4b4;border-radius:6px;padding:4px 14px;margin:0 0 16px}
.warnings h2{font-size:15px;margin:8px 0} .warnings li{font-size:13px;margin:2px 0}
.bad{color:#C23B22} .ok{color:#2E7D32} .grid{display:flex;flex-wrap:wrap;gap:24px}
table{border-collapse:collapse;font-size:13px;background:#fff;margin:6px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#EEF3FA}
td.l,th.l{text-align:left} .empty{color:#888;font-size:13px} footer{margin-top:32px;color:#888;font-size:12px}
.chart{width:100%;max-width:980px;background:#fff;border:1px solid #ddd;border-radius:6px;margin:8px 0;padding:8px;
box-sizing:border-box} .charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px}
"""
DIM_NAMES = {"branch": "机构", "channel": "渠道", "agent": "业务员"}


def _pct(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{100 * v:.2f}%"


def _table(frame: pd.DataFrame, columns: list[tuple[str, str]], left: Collection[str] = frozenset(), limit: int = 50) -> str:
    if frame.empty:
        return '<p class="empty">暂无数据</p>'
    head = "".join(f'<th class="{"l" if c in left else ""}">{escape(h)}</th>' for c, h in columns)
    rows = []
    for record in frame.head(limit).to_dict("records"):
        cells = []
        for c, _ in columns:
            v = record.get(c)
            if isinstance(v, (list, tuple, dict)):
                v = "、".join(map(str, v)) if not isinstance(v, dict) else str(v)
            text = "—" if v is None or (not isinstance(v, str) and pd.isna(v)) else (
                f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
            cells.append(f'<td class="{"l" if c in left else ""}">{escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="sub">共 {len(frame):,} 行，显示前 {limit} 行</p>' if len(frame) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _card(label: str, value: str, cls: str = "") -> str:
    return f'<div class="card"><div class="v {cls}">{escape(value)}</div><div class="k">{escape(label)}</div></div>'


def render(board: Board, docs_link: str | None = None) -> str:
    if board.night is None:
        body = '<p class="empty">案件库中还没有任何批次的运行记录。</p>'
        return _html("客户信息质量看板", body)
    t = board.tonight
    trend = board.trend
    on_time = trend["on_time"].mean() if len(trend) else None
    cards = "".join([
        _card("今晚检查保单", f"{int(t['checked']):,}"),
        _card("通过率", _pct(t["pass_rate"]), "ok" if (t["pass_rate"] or 0) >= 0.95 else "bad"),
        _card("今晚发现问题", f"{int(t['findings']):,}"),
        _card("未结问题件", f"{int(t['open']):,}"),
        _card("其中今晚新增", f"{int(t['new']):,}"),
        _card(f"逾期问题件（截至 {board.as_of}）", f"{int(board.ageing['overdue'].sum()) if len(board.ageing) else 0:,}",
              "bad" if len(board.ageing) and board.ageing["overdue"].sum() else ""),
        _card("清单按时下发", "是" if t["on_time"] else "否", "ok" if t["on_time"] else "bad"),
        _card(f"近{len(trend)}晚按时率", _pct(on_time)),
        _card("运行提醒", f"{len(t.get('warnings', []))}", "bad" if t.get("warnings") else "ok"),
        *_progress_cards(board),
    ])
    sections = [f'<div class="cards">{cards}</div>']
    if t.get("warnings"):  # what the operator was warned of tonight (pipeline.night.alerts)
        lines = "".join(f"<li>{escape(w)}</li>" for w in t["warnings"])
        sections.append(f'<div class="warnings"><h2>运行提醒（{len(t["warnings"])} 条）</h2><ul>{lines}</ul></div>')
    if t.get("provisional"):
        sections.append('<p class="bad">注意：部分期限落在日历尚未公布的年份，按周末推算，标记为“期限待定”。</p>')

    sections.append(f"<h2>近{len(trend)}晚趋势</h2>" + _chart("chart-trend", board) + _table(
        trend.iloc[::-1].assign(on_time=trend["on_time"].iloc[::-1].map({True: "是", False: "否"}),
                                per_1000=[round(1000 * f / c, 1) if c else None
                                          for f, c in zip(trend["findings"].iloc[::-1], trend["checked"].iloc[::-1])]),
        [("night", "业务日期"), ("checked", "检查保单"), ("flagged", "有问题保单"), ("findings", "发现数"),
         ("per_1000", "每千件"), ("list_due", "清单下发期限"), ("on_time", "按时")], {"night"}))

    sections.append(f"<h2>规则（业务日期 {escape(board.night)}）</h2><div class='charts'>"
                    + _chart("chart-rules", board) + _chart("chart-rule-pass", board) + "</div>"
                    + _table(rule_rows(board), [("label", "规则"), ("category", "问题类别"), ("severity", "严重程度"),
                                                ("findings", "发现数"), ("percent", "失败率"), ("status", "运行状态")],
                             {"label", "category", "severity", "status"}))

    sections.append(f"<h2>{escape(board.quarter)} 处理进度（本季度新增的问题件，逾期截至 {board.as_of}）</h2>"
                    + _chart("chart-progress", board) + _table(
                        board.progress, [("branch", "机构"), ("raised", "新增")] + [(c, c) for c in PROGRESS]
                        + [("overdue", "逾期（未结）"), ("settled", "已办结"), ("days_to_settle", "平均办结天数")],
                        {"branch"}))
    sections.append(f"<h2>{escape(board.quarter)} 确认虚假资料（按机构、业务员）</h2>" + _chart("chart-false", board)
                    + _table(agent_rows(board.false_agents, "agent_code"),
                             [("branch", "机构"), ("agent", "业务员"), ("items", "问题件"), ("policies", "保单")],
                             {"branch", "agent"}))

    for dim, name in DIM_NAMES.items():
        d = board.dims.get(dim, pd.DataFrame())
        if dim == "agent" and len(d):
            d = agent_rows(d[d["policies_30"] >= 20], "key", "name")  # a rate over a handful of policies says nothing
        sections.append(f"<h2>按{name}：每千件保单问题数（近{len(trend)}晚）</h2>" + _table(
            d, [("agent" if dim == "agent" else "key", name), ("policies_tonight", "今晚检查保单"),
                ("findings_tonight", "今晚发现"), ("policies_30", f"近{len(trend)}晚检查保单"),
                ("findings_30", f"近{len(trend)}晚发现"), ("per_1000", "每千件保单发现")], {"key", "agent"}, limit=30))
        if dim == "agent":
            sections.append(f'<p class="sub">业务员排名只含近{len(trend)}晚保单不少于20件的业务员。</p>')

    labels = [label for label, _, _ in AGEING]
    sections.append(f"<h2>未结与逾期问题件（按机构、账龄；截至 {board.as_of}）</h2>" + _table(
        board.ageing, [("branch", "机构")] + [(label, label) for label in labels] + [("open", "未结合计"),
                                                                                   ("overdue", "逾期合计")], {"branch"}))
    sections.append(f"<h2>共用联系方式：业务员排名（近{len(trend)}晚）</h2>" + _table(
        agent_rows(board.shared_agents, "agent_code", "agent_name"),
        [("agent", "业务员"), ("findings", "问题件"), ("policies", "保单"), ("clusters", "线索群")], {"agent"}))
    sections.append("<h2>共用联系方式：线索群规模（未结）</h2>" + _table(
        board.clusters, [("bucket", "线索群人数"), ("clusters", "线索群数")], {"bucket"}))

    e = board.expectations
    if e:
        rows = pd.DataFrame(e.get("results", []))
        link = f' <a href="{escape(docs_link)}">查看 Data Docs 明细</a>' if docs_link else ""
        status = "全部通过" if not e.get("failed") else f"{e['failed']} 项未通过"
        sections.append(f"<h2>批次质量期望（Great Expectations）</h2><p>{escape(status)}{link}</p>" + (_table(
            rows.assign(name=rows["name"].map(expectation_title),
                        success=rows["success"].map({True: "通过", False: "未通过"}),
                        blocking=rows["blocking"].map({True: "是", False: "否"})),
            [("name", "期望"), ("success", "结果"), ("blocking", "阻断"), ("observed", "观测值")],
            {"name", "success", "blocking", "observed"}, limit=100) if len(rows) else ""))
    title = f"客户信息质量看板 · 业务日期 {board.night}"
    body = f'<h1>{escape(title)}</h1><p class="sub">日历来源：{escape(str(t.get("calendar_source", "")))}；' \
           f'仅含汇总数据，不含客户个人信息。</p>' + "".join(sections)
    return _html(title, body, charts.as_json(charts.options(board)))


def _progress_cards(board: Board) -> list[str]:
    if board.progress.empty:
        return []
    total = board.progress[board.progress["branch"] == "合计"].iloc[0]
    return [_card(f"{board.quarter} 新增问题件", f"{int(total['raised']):,}"),
            _card(f"{board.quarter} 已办结", f"{int(total['settled']):,}"),
            _card(f"{board.quarter} 确认虚假资料", f"{int(total['虚假资料']):,}", "bad" if total["虚假资料"] else "")]


def rule_rows(board: Board) -> pd.DataFrame:
    """The rules' table: title and code, severity and run status in Chinese."""
    r = board.rules
    return r.assign(label=r["rule"].map(charts.rule_label), severity=r["severity"].map(lambda s: SEVERITY_NAMES.get(s, s)),
                    status=r["status"].map(lambda s: RULE_STATUS_NAMES.get(s, s)),
                    percent=[None if v is None or pd.isna(v) else f"{v:.2f}%" for v in r["percent"]])


def agent_rows(frame: pd.DataFrame, code: str, name: str = "agent_name") -> pd.DataFrame:
    """An agent as people know them: the roster's name (masked as any text) and the code."""
    if frame.empty:
        return frame
    names = frame[name] if name in frame else pd.Series("", index=frame.index)
    return frame.assign(agent=[f"{mask_text(n)}（{c}）" if isinstance(n, str) and n else str(c)
                               for n, c in zip(names, frame[code])])


def _chart(key: str, board: Board) -> str:
    """A chart's element, or 暂无数据 where it would have nothing to draw."""
    if not charts.has_data(key, board):
        return '<p class="empty">暂无数据</p>'
    return f'<div class="chart" id="{key}" data-height="{charts.height(key, board)}"></div>'


@cache
def _scripts() -> tuple[str, str]:
    return ECHARTS.read_text(encoding="utf-8"), SCRIPT.read_text(encoding="utf-8")


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _html(title: str, body: str, options: str | None = None) -> str:
    scripts = ""
    policy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    if options is not None:
        library, draw = _scripts()
        policy = f"default-src 'none'; script-src {_sha(library)} {_sha(draw)}; style-src 'unsafe-inline'; img-src data:"
        scripts = (f'<script type="application/json" id="chart-options">{options}</script>'
                   f"<script>{library}</script><script>{draw}</script>")
    return (f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}"
            f"<footer>custdq 生成 · 离线单文件 · 图表：Apache ECharts（Apache License 2.0）</footer>{scripts}"
            f"</body></html>\n")


def write_dashboard(source: sa.Engine | sa.Connection, path: Path, night: str | None = None,
                    docs_link: str | None = None) -> Board:
    """Write the page; `source` is the store (an engine) or the night's open connection."""
    from pipeline.files import atomic_write

    today = clock.now().date()  # overdue as of the day the page is made: as `cases list` counts it
    if isinstance(source, sa.Connection):
        board = gather(source, night, today)
    else:
        with source.connect() as conn:
            board = gather(conn, night, today)
    text = render(board, docs_link)

    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    atomic_write(path, write)
    return board


def rebuild(db: str | None, config_path: str | None, path: Path, night: str | None = None):
    """`custdq dashboard`: the page rebuilt from an existing store alone (`night`: a business
    date the store holds a run of; default the latest)."""
    from pipeline import store
    from pipeline.errors import InputError
    from pipeline.cases.nights import nights

    engine = store.existing(db, config_path)[0]
    if night is not None:
        with engine.connect() as conn:
            known = nights(conn)
        if night not in known:
            raise InputError(f"--night {night}: the store holds no run of that night (its nights: "
                             f"{', '.join(known[-5:]) or 'none'}{' ...' if len(known) > 5 else ''})")
    return write_dashboard(engine, path, night)
