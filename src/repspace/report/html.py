"""A self-contained HTML report: sections of text, tables and embedded PNG figures."""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from repspace._io import atomic_file

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #335;padding-bottom:.3em}h2{margin-top:2em;color:#335}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccd;padding:.3em .6em;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:.92em}figure{margin:1em 0}figure img{max-width:100%}
nav a{margin-right:1em}
"""


def fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool) or x is None:
        return "" if x is None else ("yes" if x else "no")
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:,.0f}"
    return str(x)


def compat_cells(compatible: bool, gain: float | None, note: str | None = None) -> dict[str, Any]:
    """The compatibility criterion's verdict and, beside it, the gain only where it means something: a pair that
    fails the criterion (or whose new model does not improve on the old) shows why there is no gain, never a number
    that reads as a success (`evaluation.compatibility`'s `gain` / `gain_note`; a failing pair shows no gain even
    if one was computed by the bare ratio)."""
    if not compatible:
        shown: Any = f"none: {note or 'not compatible'}"
    else:
        shown = gain if gain is not None else f"none: {note or 'no improvement to share'}"
    return {"criterion M(new,old) >= M(old,old)": "holds" if compatible else "FAILS", "gain": shown}


class Report:
    """Collects sections; `write(path)` saves one HTML file atomically."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.sections: list[tuple[str, str]] = []

    def section(self, title: str, *parts: str) -> None:
        self.sections.append((title, "\n".join(parts)))

    @staticmethod
    def text(s: str, note: bool = False) -> str:
        return f'<p class="{"note" if note else ""}">{html.escape(s)}</p>'

    @staticmethod
    def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, digits: int = 4) -> str:
        if not rows:
            return "<p class='note'>(no rows)</p>"
        columns = list(columns or rows[0].keys())
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c), digits))}</td>" for c in columns) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    @staticmethod
    def figure(fig: Any, caption: str = "") -> str:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        cap = f"<figcaption class='note'>{html.escape(caption)}</figcaption>" if caption else ""
        return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">{cap}</figure>'

    def render(self) -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        nav = "".join(f'<a href="#s{k}">{html.escape(t)}</a>' for k, (t, _) in enumerate(self.sections))
        body = "".join(f'<h2 id="s{k}">{html.escape(t)}</h2>\n{c}' for k, (t, c) in enumerate(self.sections))
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
                f"<p class='note'>generated {stamp} by repspace</p><nav>{nav}</nav>{body}</body></html>\n")

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_file(path, "w") as fh:
            fh.write(self.render())
        return path
