"""benchplot.py — the SVG pictures of bench/forward, written directly (no plotting stack).

throughput(): one panel per case, a horizontal bar per mover (its median msg/s, with every
round as a dot) and the ideal mover's median as a dashed line. latency(): p50 and p99 end to end
against the offered rate, one line per mover.
"""

from xml.sax.saxutils import escape

COLORS = {"amqp-gw": "#1f77b4", "shovel": "#d62728", "ideal": "#2ca02c"}
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def color(name):
    if name.startswith("amqp-gw"):
        return COLORS["amqp-gw"]
    if name.startswith("shovel"):
        return COLORS["shovel"]
    return COLORS["ideal"]


def nice_max(v):
    """A round axis maximum at or above v."""
    for step in (1, 2, 2.5, 5):
        for mag in range(0, 9):
            m = step * 10 ** mag
            if m >= v:
                return m
    return v


def text(x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" {FONT} font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{escape(s)}</text>')


def throughput(path, table):
    """table: [(case, rows)] as bench/forward's summarise returns it. Returns path."""
    left, width, bar_h, gap = 190, 520, 16, 6
    out, y = [], 40
    out.append(text(10, 22, "bench/forward: msg/s per mover (bar: median round, dots: every "
                            "round, dashed: ideal mover)", 14, weight="bold"))
    for case, rows in table:
        top = max(max(r["rates"]) for r in rows)
        scale = width / nice_max(top)
        out.append(text(10, y + 14, case.title, 13, weight="bold"))
        y += 22
        ideal = next((r for r in rows if r["name"] == "ideal mover"), None)
        y0 = y
        for r in rows:
            c = color(r["name"])
            out.append(text(left - 8, y + bar_h - 4, r["name"], 12, "end"))
            out.append(f'<rect x="{left}" y="{y}" width="{r["rate"] * scale:.1f}" '
                       f'height="{bar_h}" fill="{c}" fill-opacity="0.75"/>')
            for x in r["rates"]:
                out.append(f'<circle cx="{left + x * scale:.1f}" cy="{y + bar_h / 2:.1f}" r="2.5" '
                           f'fill="#111"/>')
            label = f'{r["rate"]:.0f}'
            if r.get("vs_ideal") is not None:
                label += f'  ({r["vs_ideal"]:.2f}x ideal)'
            elif r.get("vs_shovel") is not None:
                label += f'  ({r["vs_shovel"]:.2f}x shovel)'
            out.append(text(left + r["rate"] * scale + 6, y + bar_h - 4, label, 11))
            y += bar_h + gap
        if ideal:
            x = left + ideal["rate"] * scale
            out.append(f'<line x1="{x:.1f}" y1="{y0 - 3}" x2="{x:.1f}" y2="{y - gap + 3}" '
                       f'stroke="{COLORS["ideal"]}" stroke-width="1.5" stroke-dasharray="4 3"/>')
        out.append(f'<line x1="{left}" y1="{y}" x2="{left + width}" y2="{y}" stroke="#999"/>')
        axis_max = nice_max(top)
        for i in range(5):
            v = axis_max * i / 4
            out.append(text(left + v * scale, y + 13, f"{v:.0f}", 10, "middle", fill="#555"))
        y += 30
    return write(path, left + width + 180, y + 10, out)


def latency(path, lat):
    """lat: {(offered rate, mover name): {p50_ms, p99_ms, ...}}. Returns path."""
    rates = sorted(dict.fromkeys(r for r, _ in lat))
    movers = list(dict.fromkeys(m for _, m in lat))
    left, top, w, h = 70, 50, 520, 300
    ymax = nice_max(max(v["p99_ms"] for v in lat.values()) * 1.1)
    xmax = nice_max(max(rates) * 1.05)
    out = [text(10, 22, "bench/forward: end-to-end latency against the offered rate "
                        "(solid p99, dashed p50)", 14, weight="bold")]

    def px(rate, ms):
        return left + rate / xmax * w, top + h - ms / ymax * h

    out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
    for i in range(5):
        v = ymax * i / 4
        _, yy = px(0, v)
        out.append(text(left - 6, yy + 4, f"{v:g}", 10, "end", fill="#555"))
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + w}" y2="{yy:.1f}" '
                   'stroke="#eee"/>')
    for r in rates:
        xx, _ = px(r, 0)
        out.append(text(xx, top + h + 15, f"{r}", 10, "middle", fill="#555"))
    out.append(text(left + w / 2, top + h + 34, "offered msg/s", 12, "middle"))
    out.append(text(16, top + h / 2, "ms", 12, "middle"))
    for i, m in enumerate(movers):
        c = color(m)
        for field, dash in (("p99_ms", ""), ("p50_ms", ' stroke-dasharray="5 4"')):
            pts = [px(r, lat[(r, m)][field]) for r in rates if (r, m) in lat]
            out.append('<polyline fill="none" stroke="{}" stroke-width="2"{} points="{}"/>'.format(
                c, dash, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)))
            for x, y in pts:
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>')
        out.append(f'<rect x="{left + w + 15}" y="{top + 10 + i * 20}" width="12" height="12" '
                   f'fill="{c}"/>')
        out.append(text(left + w + 32, top + 20 + i * 20, m, 12))
    return write(path, left + w + 130, top + h + 50, out)


def write(path, width, height, parts):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
                f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">\n'
                f'<rect width="100%" height="100%" fill="white"/>\n')
        f.write("\n".join(parts))
        f.write("\n</svg>\n")
    return path
