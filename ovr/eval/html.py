"""The run report as one standalone HTML page (``report.html``) for a browser or the KFP UI.

:func:`write_html_report` turns the report's self-contained Markdown (``report_inline.md``, the
figures embedded as base64 data URLs, written by :func:`ovr.eval.report.build_report`) into HTML
with the ``markdown`` package (tables extension) and a small stylesheet that makes the tables
readable (borders, right-aligned numbers, zebra rows) and fits the figures to the page width.
Nothing is fetched from anywhere: the page opens offline.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import markdown

INLINE_MD = "report_inline.md"
HTML_FILE = "report.html"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1100px;
       margin: 2rem auto; padding: 0 1.5rem; color: #1f2328; line-height: 1.5; background: #fff; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
code { background: #f3f4f6; padding: .1rem .3rem; border-radius: 4px; font-size: 90%; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; display: block;
        max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .35rem .75rem; text-align: left; white-space: nowrap; }
th { background: #f0f3f6; }
td.num { text-align: right; }
td:first-child { font-weight: 500; }
tr:nth-child(even) td { background: #f8fafc; }
img { max-width: 100%; height: auto; display: block; margin: 1rem 0; border: 1px solid #e5e7eb; }
"""


NUMBER_CELL = re.compile(r"<td>([-+]?(?:\d[\d,]*)?(?:\.\d+)?(?:e[-+]?\d+)?%?|-|nan|inf)</td>")


def title_of(text: str, default: str = "ovr run report") -> str:
    """The Markdown's first ``# `` heading."""
    m = re.search(r"^# (.+)$", text, flags=re.MULTILINE)
    return m.group(1).strip() if m else default


def markdown_to_html(text: str, title: str | None = None) -> str:
    """A standalone HTML page of the Markdown ``text`` (tables extension, embedded stylesheet)."""
    body = markdown.markdown(text, extensions=["tables"], output_format="html")
    body = NUMBER_CELL.sub(r'<td class="num">\1</td>', body)  # numbers right-aligned, text left
    title = html.escape(title or title_of(text))
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_html_report(source: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` from the report folder (or a Markdown file in it; the self-contained
    ``report_inline.md`` is used when it is there); returns its path (default: beside the source)."""
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    md = folder / INLINE_MD if (source.is_dir() or (folder / INLINE_MD).is_file()) else source
    if not md.is_file():
        raise FileNotFoundError(f"no report Markdown at {md}")
    path = Path(out) if out is not None else folder / HTML_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_to_html(md.read_text()))
    return path
