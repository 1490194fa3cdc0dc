"""A report as a list of blocks, written as Markdown and as one self-contained HTML file.

The HTML carries its style inline and every image as a base64 PNG data URI, so the single file
can be mailed or archived; the Markdown links the PNGs under ``figures/``.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Note:
    """A highlighted remark (a blockquote in Markdown)."""

    text: str


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str | None = None
    # Rows drawn in a muted style (the published numbers set beside ours).
    muted: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Image:
    """A PNG written under the report's ``figures/`` folder."""

    path: Path
    caption: str
    alt: str = ""


Block = Heading | Para | Note | Table | Image


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block], root: Path) -> str:
    """Markdown; image paths relative to ``root`` (the report folder)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Note):
            out.append("> " + b.text.replace("\n", "\n> "))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.headers) + " |",
                     "|" + "|".join("---" for _ in b.headers) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            if b.caption:
                lines.append("")
                lines.append(f"*{b.caption}*")
            out.append("\n".join(lines))
        elif isinstance(b, Image):
            rel = b.path.relative_to(root).as_posix()
            out.append(f"![{_md_cell(b.alt or b.caption)}]({rel})\n\n*{b.caption}*")
    return "\n\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
tr.muted td{color:#666;background:#fafafa;font-style:italic}
.caption{font-size:.85em;color:#555;margin:.2em 0 1em}
.note{border-left:4px solid #e0a000;background:#fff8e0;padding:.5em 1em;margin:1em 0}
figure{margin:1em 0}
img{max-width:100%}
"""


def _image_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(blocks: list[Block], title: str) -> str:
    """One HTML document with inline CSS and images embedded as data URIs."""
    e = html.escape
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, Note):
            body.append(f'<div class="note">{e(b.text)}</div>')
        elif isinstance(b, Table):
            rows = ["<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in b.headers) + "</tr>"]
            for i, row in enumerate(b.rows):
                cls = ' class="muted"' if i in b.muted else ""
                rows.append(f"<tr{cls}>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
            body.append("<table>\n" + "\n".join(rows) + "\n</table>")
            if b.caption:
                body.append(f'<p class="caption">{e(b.caption)}</p>')
        elif isinstance(b, Image):
            body.append(f'<figure><img src="{_image_uri(b.path)}" alt="{e(b.alt or b.caption)}"/>'
                        f"<figcaption>{e(b.caption)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
            f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
