"""Report files: the output directory check, JSON without NaN, Markdown tables, offline HTML.

The output directory is checked before any work so a typo or a read-only place fails in a
second, not after minutes of compression and plotting.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from balerc.formats.errors import InputError
from balerc.formats.fileio import check_writable_dir


def prepare_dir(path: Path, marker: str, force: bool) -> Path:
    """Create `path` if needed and prove it is writable; refuse to overwrite without force.

    `marker` is the file a previous run leaves (summary.json, results.json). Writability is
    tested by writing, because os.access says yes to root on read-only mounts.
    """
    if path.exists() and not path.is_dir():
        raise InputError(f"cannot write the report to {path}: it is a file, not a directory")
    if (path / marker).exists() and not force:
        raise InputError(f"{path} already holds a report ({marker}); pass --force to overwrite it")
    if path.is_dir() and not force and any(path.iterdir()):  # a user's summary.md had gone
        raise InputError(f"{path} is not empty: the report would overwrite files there "
                         f"(summary.md, report.html, figures); give a new or empty directory, "
                         f"or --force")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot write the report to {path}: {exc.strerror or exc} (choose another -o)"
        ) from None
    check_writable_dir(path, "the report to")
    return path


@contextmanager
def output_dir(path: Path, marker: str, force: bool) -> Iterator[Path]:
    """`prepare_dir`, and remove the directory again if this run created it and then failed,
    so a refused input leaves nothing behind."""
    created = not path.exists()
    prepare_dir(path, marker, force)
    try:
        yield path
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise


def clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(clean(obj), indent=2, allow_nan=False) + "\n")


def num(v: Any, spec: str = ".4g") -> str:
    """A table cell: '-' for missing values."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, (int, float)):
        return format(v, spec)
    return str(v)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table ('|' in cells escaped)."""
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|")

    out = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(out)


def relative(path: str | os.PathLike, report_dir: Path) -> str:
    """A path as seen from the report directory, so a moved report keeps working and no
    absolute path (a home directory, a scratch mount) is embedded."""
    try:
        return os.path.relpath(Path(path).resolve(), Path(report_dir).resolve())
    except ValueError:  # another drive on Windows
        return Path(path).name


def anchor(heading: str) -> str:
    """The id of a section heading (HTML) and its Markdown link target."""
    return "".join(c if c.isalnum() else "-" for c in heading.lower()).strip("-")


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222;
text-align:left}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.headline{font-size:15px;line-height:1.5;border-left:4px solid #1f77b4;padding-left:1em}
nav ul{columns:2}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
.note{color:#a33}"""


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").replace("%", ""))
    except ValueError:
        return False
    return True


def html_page(title: str, sections: list[tuple[str, list[str], list[list[str]]]],
              notes: list[str], pages: list[dict[str, Any]], headline: list[str] | None = None
              ) -> str:
    """One self-contained page: headline, contents, tables, notes, figures inlined as PNG.
    Text is left-aligned; only purely numeric cells are right-aligned (digits line up)."""
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    if headline:
        body.append("<div class='headline'>" + "<br>".join(esc(x) for x in headline) + "</div>")
    names = [h for h, _, _ in sections] + (["Notes"] if notes else []) + (["Figures"] if pages else [])
    body.append("<nav><h2>Contents</h2><ul>" + "".join(
        f"<li><a href='#{anchor(h)}'>{esc(h)}</a></li>" for h in names)
        + "".join(f"<li><a href='#{esc(p['name'])}'>{esc(p['title'])}</a></li>" for p in pages)
        + "</ul></nav>")
    for heading, header, rows in sections:
        body.append(f"<h2 id='{anchor(heading)}'>{esc(heading)}</h2><table><tr>"
                    + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        body += ["<tr>" + "".join(
            f"<td class='num'>{esc(str(c))}</td>" if _is_number(str(c)) else f"<td>{esc(str(c))}</td>"
            for c in r) + "</tr>" for r in rows]
        body.append("</table>")
    if notes:
        body.append(f"<h2 id='{anchor('Notes')}'>Notes</h2><ul>"
                    + "".join(f"<li class='note'>{esc(n)}</li>" for n in notes) + "</ul>")
    if pages:
        body.append(f"<h2 id='{anchor('Figures')}'>Figures</h2>")
    for p in pages:
        data = base64.b64encode(p["png"]).decode("ascii")
        body.append(f"<h3 id='{esc(p['name'])}'>{esc(p['title'])}</h3>"
                    f"<img alt='{esc(p['title'])}' src='data:image/png;base64,{data}'>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
