"""The dashboard's charts as Apache ECharts options (issue 28, point 5), built here once for
both pages: the web app's /dashboard (ECharts served by the app itself, its CSP allowing
`'self'` scripts only) and the offline dashboard.html (ECharts inline). Options are plain JSON
(no functions): the pages hand them to `echarts.init(...).setOption(...)` unchanged
(pipeline/outputs/dashboard/assets/dashboard.js). Every label is Chinese: rules by their title with the
code, severities 错误/警告. Tooltips are drawn by ECharts itself (`renderMode: "richText"`), not
as HTML with inline styles, so a strict CSP has nothing to refuse."""

from __future__ import annotations

import json
import math

import pandas as pd

from checks.catalogue import RULES
from pipeline.outputs.dashboard.progress import PROGRESS
from pipeline.cases.labels import SEVERITY_NAMES

COLORS = ["#2F6DB5", "#D9822B", "#2E7D32", "#8E44AD", "#C23B22", "#16A2B8", "#7F8C8D", "#B7950B"]
PROGRESS_COLORS = {"未处理": "#C23B22", "处理中": "#D9822B", "已更正": "#2E7D32", "核实无误": "#2F6DB5",
                   "虚假资料": "#8E44AD", "无法联系": "#7F8C8D", "不再触发": "#16A2B8"}
RULE_LINES = 8  # the rules a pass-rate chart draws: those that failed most in the window


def rule_label(code: str) -> str:
    """A rule as people read it: its Chinese title, then its code."""
    spec = RULES.get(code)
    return f"{spec.title}（{code}）" if spec else code


def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _base(title: str) -> dict:
    return {"title": {"text": title, "left": 0, "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "axis", "renderMode": "richText"}, "color": COLORS,
            "grid": {"left": 8, "right": 16, "top": 64, "bottom": 36, "containLabel": True},
            "animation": False}


def trend(board) -> dict:
    """Findings per thousand policies checked (bars) and the pass rate (line) over the nights."""
    t = board.trend
    per_1000 = [round(1000 * f / c, 1) if c else None for f, c in zip(t["findings"], t["checked"])]
    passed = [round(100 * p, 2) if _num(p) is not None else None for p in t["pass_rate"]]
    out = _base(f"近{len(t)}晚：每千件保单发现数与通过率")
    out |= {"legend": {"bottom": 0, "data": ["每千件保单发现数", "通过率（%）"]},
            "xAxis": {"type": "category", "data": t["night"].tolist()},
            "yAxis": [{"type": "value", "name": "每千件"},
                      {"type": "value", "name": "通过率", "min": 0, "max": 100, "axisLabel": {"formatter": "{value}%"}}],
            "series": [{"name": "每千件保单发现数", "type": "bar", "data": per_1000},
                       {"name": "通过率（%）", "type": "line", "yAxisIndex": 1, "data": passed}]}
    return out


def rule_pass(board) -> dict:
    """The pass rate of the rules that failed most over the nights, one line each (100 % minus
    the share of the rows a rule tested that failed it)."""
    r = board.rule_trend
    nights = board.trend["night"].tolist()
    out = _base("近期各规则通过率（%）（发现最多的规则）")
    if r.empty:
        return out | {"xAxis": {"type": "category", "data": nights}, "yAxis": {"type": "value"}, "series": []}
    worst = r.groupby("rule")["findings"].sum().sort_values(ascending=False)
    worst = [code for code in worst.index[:RULE_LINES] if worst[code] > 0]
    lines: list[tuple[str, list[float | None]]] = []
    for code in worst:
        each = r[r["rule"] == code].set_index("night")["pass_rate"].reindex(nights)
        lines.append((rule_label(code), [None if (f := _num(v)) is None else round(f, 3) for v in each]))
    series = [{"name": name, "type": "line", "connectNulls": True, "data": data} for name, data in lines]
    low = min((v for _, data in lines for v in data if v is not None), default=90.0)
    return out | {"legend": {"bottom": 0, "data": [s["name"] for s in series]},
                  "grid": {"left": 8, "right": 16, "top": 48, "bottom": 120, "containLabel": True},
                  "xAxis": {"type": "category", "data": nights},
                  "yAxis": {"type": "value", "min": math.floor(min(low, 99.0)), "max": 100,
                            "axisLabel": {"formatter": "{value}%"}},
                  "series": series}


def rules_tonight(board) -> dict:
    """Tonight's findings per rule, by title and code, coloured by severity."""
    rules = board.rules[board.rules["findings"] > 0].sort_values("findings")
    out = _base("今晚各规则发现数")
    out["tooltip"] = {"trigger": "item", "renderMode": "richText"}
    data = [{"value": int(f), "itemStyle": {"color": "#C23B22" if s == "error" else "#D9822B"},
             "name": f"{rule_label(code)} · {SEVERITY_NAMES.get(s, s)}"}
            for code, f, s in zip(rules["rule"], rules["findings"], rules["severity"])]
    return out | {"grid": {"left": 8, "right": 40, "top": 40, "bottom": 8, "containLabel": True},
                  "xAxis": {"type": "value"},
                  "yAxis": {"type": "category", "data": [rule_label(c) for c in rules["rule"]]},
                  "series": [{"type": "bar", "data": data, "label": {"show": True, "position": "right"}}]}


def progress(board) -> dict:
    """Per branch, where the quarter's items stand: stacked bars in the order of PROGRESS."""
    p = board.progress
    p = p[p["branch"] != "合计"] if len(p) else p
    branches = p["branch"].tolist()[::-1] if len(p) else []
    out = _base(f"{board.quarter} 问题件处理进度（按机构）")
    return out | {"legend": {"bottom": 0, "data": PROGRESS},
                  "xAxis": {"type": "value"}, "yAxis": {"type": "category", "data": branches},
                  "series": [{"name": name, "type": "bar", "stack": "items",
                              "itemStyle": {"color": PROGRESS_COLORS[name]},
                              "data": [int(v) for v in p[name].tolist()[::-1]] if len(p) else []}
                             for name in PROGRESS]}


def false_info(board) -> dict:
    """The quarter's 虚假资料 per branch."""
    f = board.false_branches.sort_values("items") if len(board.false_branches) else board.false_branches
    out = _base(f"{board.quarter} 确认虚假资料（按机构）")
    return out | {"xAxis": {"type": "value", "minInterval": 1},
                  "grid": {"left": 8, "right": 40, "top": 40, "bottom": 8, "containLabel": True},
                  "yAxis": {"type": "category", "data": f["branch"].tolist() if len(f) else []},
                  "series": [{"type": "bar", "name": "问题件", "itemStyle": {"color": "#8E44AD"},
                              "label": {"show": True, "position": "right"},
                              "data": [int(v) for v in f["items"]] if len(f) else []}]}


CHARTS = {"chart-trend": trend, "chart-rule-pass": rule_pass, "chart-rules": rules_tonight,
          "chart-progress": progress, "chart-false": false_info}


def options(board, only: tuple[str, ...] | None = None) -> dict[str, dict]:
    """Every chart's options, keyed by the id of the element it is drawn in."""
    return {key: make(board) for key, make in CHARTS.items() if (only is None or key in only) and has_data(key, board)}


def as_json(charts: dict) -> str:
    """The options as JSON fit to sit inside a `<script type="application/json">` element: `<`,
    `>` and `&` escaped, so no label can close the element."""
    text = json.dumps(charts, ensure_ascii=False, allow_nan=False, default=_plain)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(v):
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(type(v).__name__)


def has_data(key: str, board) -> bool:
    """Whether a chart has anything to draw (an empty one is left out of the page)."""
    if key == "chart-progress":
        return bool(len(board.progress))
    if key == "chart-false":
        return bool(len(board.false_branches))
    if key == "chart-rules":
        return bool((board.rules["findings"] > 0).any()) if len(board.rules) else False
    if key == "chart-rule-pass":
        return bool(len(board.rule_trend)) and bool((board.rule_trend["findings"] > 0).any())
    return bool(len(board.trend))


def height(key: str, board) -> int:
    """A chart's height in pixels: the bar charts grow with their rows."""
    if key == "chart-rule-pass":
        return 420  # its legend: up to RULE_LINES long names, in rows
    rows = {"chart-rules": int((board.rules["findings"] > 0).sum()),
            "chart-progress": max(len(board.progress) - 1, 0),
            "chart-false": len(board.false_branches)}.get(key)
    return 320 if rows is None else max(160, 70 + 26 * rows)
