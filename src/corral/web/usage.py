"""/usage: usage and cost per day, drawn (admin keys only, like the usage API)."""

from __future__ import annotations

import time
from html import escape

from fastapi import APIRouter, Query
from starlette.responses import HTMLResponse

from corral.accounts.usage import Window, daily
from corral.api.deps import ServicesDep
from corral.api.routes.organization import Admin
from corral.web.pages import _render

router = APIRouter()

WIDTH, HEIGHT, PAD = 720, 220, 40


def bar_chart(days: list[str], values: list[float], label: str) -> str:
    """An inline SVG bar chart: no JavaScript, no library, renders anywhere."""
    top = max(values, default=0.0) or 1.0
    step = (WIDTH - 2 * PAD) / max(1, len(days))
    bars = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        h = (HEIGHT - 2 * PAD) * value / top
        x, y = PAD + i * step + step * 0.15, HEIGHT - PAD - h
        bars.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" '
            f'height="{h:.1f}" fill="#4a78c2"><title>{escape(day)}: {value:.6g}</title></rect>'
            f'<text x="{x + step * 0.35:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
            f'text-anchor="middle">{escape(day[5:])}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(label)}">'
        f'<text x="{PAD}" y="20" font-size="13">{escape(label)} (max {top:.6g})</text>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        f'stroke="#888"/>{"".join(bars)}</svg>'
    )


@router.get("/usage", response_class=HTMLResponse, include_in_schema=False)
async def usage_page(
    _: Admin, services: ServicesDep, days: int = Query(7, ge=1, le=31)
) -> HTMLResponse:
    window = Window.parse(int(time.time()) - (days - 1) * 86400, None, "1d", days)
    days_ = await daily(services.usage, window)
    labels = [d.day for d in days_]
    rows = [(d.day, r) for d in days_ for r in d.rows]
    chart = bar_chart(labels, [d.cost for d in days_], "Cost per day, USD") + bar_chart(
        labels, [d.tokens / 1000 for d in days_], "Tokens per day, thousands"
    )
    return _render(
        "usage.html",
        title="Usage",
        today=services.registry.today(),
        days=days,
        rows=rows,
        chart=chart,
    )
