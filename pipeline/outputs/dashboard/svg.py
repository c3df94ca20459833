"""Small inline SVG charts: horizontal bars and a line over nights. Plain markup (no script),
so the page opens offline and a browser has nothing to fetch or run. Every label is escaped."""

from __future__ import annotations

from html import escape

PALETTE = {"bar": "#2F6DB5", "alt": "#D9822B", "bad": "#C23B22", "grid": "#DDDDDD", "text": "#333333"}


def _num(v: float, digits: int = 1) -> str:
    return f"{v:,.{digits}f}" if isinstance(v, float) and not float(v).is_integer() else f"{int(v):,}"


def bars(labels: list[str], values: list[float], title: str, unit: str = "", color: str = "bar",
         width: int = 560, row: int = 22) -> str:
    """Horizontal bars, one per label, value written at the bar's end."""
    if not labels:
        return f'<p class="empty">{escape(title)}：暂无数据</p>'
    label_w, pad = 190, 8
    top = max((v for v in values if v is not None), default=0) or 1
    height = row * len(labels) + 28
    plot = width - label_w - 70
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="14" font-size="13" font-weight="bold" fill="{PALETTE["text"]}">{escape(title)}</text>']
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 24 + i * row
        v = value or 0
        w = max(1, int(plot * v / top)) if v else 0
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(f'<text x="{label_w - pad}" y="{y + 14}" font-size="12" text-anchor="end" '
                     f'fill="{PALETTE["text"]}"><title>{escape(label)}</title>{escape(short)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row - 8}" fill="{PALETTE[color]}"/>')
        parts.append(f'<text x="{label_w + w + 4}" y="{y + 14}" font-size="12" fill="{PALETTE["text"]}">'
                     f'{escape(_num(v))}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line(xs: list[str], ys: list[float | None], title: str, unit: str = "", width: int = 560, height: int = 200,
         color: str = "bar", percent: bool = False) -> str:
    """A line over nights (missing values leave a gap); first and last night labelled."""
    points = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if not points:
        return f'<p class="empty">{escape(title)}：暂无数据</p>'
    left, right, top_m, bottom = 56, 16, 28, 30
    lo = min(y for _, y in points)
    hi = max(y for _, y in points)
    if hi == lo:  # a flat line: a small band around it (percentages stay within 0-100%)
        step = 0.01 if percent else max(1.0, abs(lo) * 0.05)
        lo, hi = lo - step, hi + step
        if percent:
            lo, hi = max(lo, 0.0), min(hi, 1.0) if hi - 0.0 > 1.0 else hi
    span_x = max(len(xs) - 1, 1)

    def px(i: int) -> float:
        return left + (width - left - right) * i / span_x

    def py(v: float) -> float:
        return top_m + (height - top_m - bottom) * (1 - (v - lo) / (hi - lo))

    fmt = (lambda v: f"{100 * v:.1f}%") if percent else (lambda v: _num(v) + unit)
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="14" font-size="13" font-weight="bold" fill="{PALETTE["text"]}">{escape(title)}</text>']
    for v in (lo, hi):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" '
                     f'stroke="{PALETTE["grid"]}"/><text x="{left - 4}" y="{py(v) + 4:.1f}" font-size="11" '
                     f'text-anchor="end" fill="{PALETTE["text"]}">{escape(fmt(v))}</text>')
    segment: list = []
    segments: list = []
    for i, y in enumerate(ys):
        if y is None:
            if segment:
                segments.append(segment)
            segment = []
        else:
            segment.append(f"{px(i):.1f},{py(y):.1f}")
    if segment:
        segments.append(segment)
    for s in segments:
        parts.append(f'<polyline fill="none" stroke="{PALETTE[color]}" stroke-width="2" points="{" ".join(s)}"/>')
    for i, y in enumerate(ys):
        if y is not None:
            parts.append(f'<circle cx="{px(i):.1f}" cy="{py(y):.1f}" r="3" fill="{PALETTE[color]}">'
                         f'<title>{escape(xs[i])}: {escape(fmt(y))}</title></circle>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11" fill="{PALETTE["text"]}">{escape(xs[0])}</text>')
    parts.append(f'<text x="{width - right}" y="{height - 8}" font-size="11" text-anchor="end" '
                 f'fill="{PALETTE["text"]}">{escape(xs[-1])}</text>')
    parts.append("</svg>")
    return "".join(parts)
