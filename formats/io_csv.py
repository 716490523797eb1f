"""CSV and TSV tables through the stdlib csv module (RFC 4180 quoting).

Reading keeps the header line byte-exact (``source["header_text"]``) and the line
terminator (``source["newline"]``) so a written file starts with the same header.
Columns are typed by trying, in order, int64 (uint64 beyond it), float64 (empty cells
become NaN), bool (only the exact words ``True``/``False``) and finally string; numbers
are ASCII text only (no ``1_000``, padding spaces or other scripts' digits, which Python's
int() would take: such columns stay text), integers beyond 64 bits stay text, and an
integer column with empty cells is refused by name (integers have no missing value; it
had become floats, then quantized under a bound). Quoting is RFC 4180, strictly: a quote
left open, or text after a closing quote, is an error naming the line (it had swallowed
the rest of the file into one cell). Floats are written with
``repr(float(v))``, the shortest text that parses back to the same double, so
read -> write -> read is bit-exact in values (float32 columns come back as float64 and
a NaN comes back as the standard quiet NaN; strings that look like numbers come back as
numbers).
"""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import InputError
from .table import Table


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while millions of small str objects are made: none of them form
    cycles, and the collector's repeated scans would otherwise double the parse time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _sniff_delimiter(header_line: str) -> str:
    """For .txt files: tab-separated when the header has a tab, else comma-separated."""
    return "\t" if "\t" in header_line else ","


def _header_span(text: str, delimiter: str) -> tuple[list[str], int, int]:
    """Parse the header record; return its cells, its end offset (before the line end) and
    the offset where the body starts. A quoted header cell may span several lines."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return [], 0, 0
    end = -1
    for _ in range(reader.line_num):
        nxt = text.find("\n", end + 1)
        if nxt < 0:
            return header, len(text), len(text)
        end = nxt
    body_start = end + 1
    line_end = end - 1 if end > 0 and text[end - 1] == "\r" else end
    return header, line_end, body_start


_INT_CHARS = str.maketrans("", "", "0123456789+-")
_FLOAT_CHARS = str.maketrans("", "", "0123456789+-.eEinfatyINFATY")


def _only(cells: Sequence[str], chars: dict[int, None]) -> bool:
    """Every cell made of these ASCII characters only (numpy's str -> number conversion
    is Python's, which also takes '1_000', ' 3 ' and non-ASCII digits)."""
    return not "".join(cells).translate(chars)


_QUOTING = (" (RFC 4180 quoting: a quoted field must be closed, its closing quote followed "
            "by the delimiter or the line end, and a quote inside it doubled)")
_FIELD_LIMIT = 1 << 28  # characters per cell (Python's csv default, 131,072, is too low)
_OTHER_SEPARATORS = (";", "|", " ")


def _other_separator(path: Path, text: str, header: list[str], delimiter: str) -> None:
    """A one-column table whose lines all hold the same number (> 0) of ';', '|' or
    spaces, with numbers between them, is another format's table, not a column of text:
    refused by name (it had become one string column, silently)."""
    if len(header) != 1:
        return
    lines = [ln.strip() for ln in text.splitlines()[:6] if ln.strip()]
    for sep in _OTHER_SEPARATORS:
        counts = {ln.count(sep) for ln in lines}
        if len(lines) > 1 and len(counts) == 1 and counts != {0} and all(
                any(_number(tok) for tok in ln.split(sep)) for ln in lines[1:]):
            name = {" ": "space", ";": "semicolon", "|": "pipe"}[sep]
            want = "comma-separated .csv" if delimiter == "," else "tab-separated"
            raise InputError(
                f"{path}: every line holds {counts.pop()} '{sep}': a {name}-separated table? "
                f"balerc reads {want} text (.csv: commas, .tsv/.txt: tabs); convert it, e.g. "
                f"pandas.read_csv('{path.name}', sep={sep!r}).to_csv('x.csv', index=False)")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_column(cells: Sequence[str], name: str, path: Path,
                  force_string: bool = False) -> np.ndarray:
    """Type one column from its cell texts: int64 (uint64), else float64, else bool,
    else string."""
    if force_string:
        return np.array(cells, dtype=object)
    if len(cells) == 0:
        return np.empty(0, dtype=np.float64)
    if _only(cells, _INT_CHARS):
        try:
            return np.array(cells, dtype=np.int64)
        except OverflowError:
            try:
                return np.array(cells, dtype=np.uint64)
            except (ValueError, OverflowError):
                return np.array(cells, dtype=object)  # beyond 64 bits: kept as its text
        except ValueError:
            if "" in cells:
                _refuse_int_gaps(cells, name, path)
    if _only(cells, _FLOAT_CHARS):
        try:
            return np.array(cells, dtype=np.float64)
        except ValueError:
            if "" in cells:
                try:
                    return np.array(["nan" if c == "" else c for c in cells], dtype=np.float64)
                except ValueError:
                    pass
    if set(cells) <= {"True", "False"}:
        return np.asarray(cells, dtype=object) == "True"
    return np.array(cells, dtype=object)


def _refuse_int_gaps(cells: Sequence[str], name: str, path: Path) -> None:
    """An integer column with empty cells: refused by name (it would become floats)."""
    filled = [c for c in cells if c != ""]
    try:
        np.array(filled, dtype=np.int64)
    except (ValueError, OverflowError):
        return  # not integers after all: typed further on
    first = cells.index("") + 1
    raise InputError(f"{path}: column '{name}' holds integers with {len(cells) - len(filled):,} "
                     f"empty cell(s) (first in data row {first:,}); integers have no missing "
                     f"value: fill them, or leave the column out with --columns")


def _ragged_error(path: Path, text: str, delimiter: str, n_fields: int) -> InputError:
    """Re-scan to find the 1-based line number of the first row with a wrong field count."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    next(reader)
    for row in reader:
        if row and len(row) != n_fields:
            return InputError(
                f"{path}: line {reader.line_num} has {len(row)} fields but the header has "
                f"{n_fields} (expected {n_fields}, found {len(row)}); fix that row or quote "
                "fields that contain the delimiter"
            )
    return InputError(f"{path}: rows have differing numbers of fields")  # pragma: no cover


def read_csv(
    path: str | Path, *, delimiter: str | None = ",", columns: list[str] | None = None
) -> Table:
    """Read a delimited text table; `delimiter=None` picks tab or comma from the header."""
    from .tableio import select_names

    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc}); re-save it as UTF-8") from exc
    bom = text.startswith("\ufeff")
    if bom:
        text = text[1:]
    if delimiter is None:
        delimiter = _sniff_delimiter(text.split("\n", 1)[0])

    try:
        header, header_end, _ = _header_span(text, delimiter)
    except csv.Error as exc:
        raise InputError(f"{path}: line 1: {exc}{_QUOTING}") from exc
    if not header:
        raise InputError(f"{path}: the table is empty (no header line); nothing to read")
    header_text = text[:header_end]
    newline = "\r\n" if text[header_end : header_end + 2] == "\r\n" else "\n"

    dupes = sorted({n for n in header if header.count(n) > 1})
    if dupes:
        raise InputError(f"{path}: duplicate column names {dupes}; rename them in the header")

    _other_separator(path, text, header, delimiter)
    wanted = select_names(header, columns, path)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, _FIELD_LIMIT))
    try:
        with _gc_paused():
            return _read_body(path, text, delimiter, header, wanted, header_text, newline, bom)
    finally:
        csv.field_size_limit(limit)


def _read_body(
    path: Path,
    text: str,
    delimiter: str,
    header: list[str],
    wanted: list[str],
    header_text: str,
    newline: str,
    bom: bool,
) -> Table:
    """Parse the records after the header and type the wanted columns."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        next(reader)
        rows = list(reader)
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: {exc}{_QUOTING}") from exc

    n_fields = len(header)
    lengths = set(map(len, rows))
    if lengths - {n_fields, 0}:
        raise _ragged_error(path, text, delimiter, n_fields)
    if 0 in lengths:  # blank lines carry no record
        rows = [r for r in rows if r]

    index = {n: j for j, n in enumerate(header)}
    transposed = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    cols: dict[str, np.ndarray] = {}
    for name in wanted:
        j = index[name]
        # a nameless first column holds row labels (gene names, a pandas index): keep text
        cols[name] = _parse_column(transposed[j], name, path,
                                   force_string=(j == 0 and name == ""))
    # float columns whose every NaN was an empty cell: written back empty, not as 'nan'
    blank = [n for n in wanted if cols[n].dtype.kind == "f" and "" in transposed[index[n]]
             and not any(c.strip().lower() == "nan" for c in transposed[index[n]])]

    source = {
        "format": "csv" if delimiter == "," else "tsv",
        "delimiter": delimiter,
        "header_text": header_text,
        "newline": newline,
        "dtypes": {n: str(a.dtype) for n, a in cols.items()},
    }
    if blank:
        source["empty_nan"] = blank
    if bom:
        source["bom"] = True
    return Table(cols, source)


def _cells(array: np.ndarray, empty_nan: bool = False) -> list[str]:
    """Column values as text: shortest round-trip repr for floats, str for ints; with
    `empty_nan` (a source column whose NaNs were empty cells) NaN as an empty cell."""
    k = array.dtype.kind
    if k == "f" and empty_nan:
        cells = _cells(array)
        for i in np.flatnonzero(np.isnan(array)).tolist():
            cells[i] = ""
        return cells
    if k == "f" and array.dtype.itemsize < 8:  # the shortest text of the float32 (0.12),
        return array.astype(str).tolist()       # not of its float64 widening (0.1199999...)
    if k == "f":
        return list(map(repr, array.tolist()))  # tolist() gives Python floats
    if k in "iu":
        return list(map(str, array.tolist()))
    if k == "b":
        return np.where(array, "True", "False").tolist()
    return [str(v) for v in array.tolist()]


_BLOCK_ROWS = 65_536


def _plain(table: Table, cells: list[list[str]], delimiter: str) -> bool:
    """True when csv.writer would quote no cell (so plain joining writes the same bytes).

    Number and bool texts never hold a delimiter, quote or line break; only string
    columns are checked, all at once through one joined string.
    """
    if delimiter not in (",", "\t") or not cells:
        return False
    if len(cells) == 1 and "" in cells[0]:
        return False  # csv.writer writes a lone empty field as ""
    for name, column in zip(table.names, cells, strict=True):
        if table.columns[name].dtype.kind == "O":
            joined = "".join(column)
            if any(ch in joined for ch in (delimiter, '"', "\r", "\n")):
                return False
    return True


def write_csv(table: Table, path: str | Path, *, delimiter: str = ",") -> None:
    """Write `table` as delimited text, reusing the source header line when it still fits."""
    path = Path(path)
    src = table.source
    same_family = src.get("format") in ("csv", "tsv")
    newline = src.get("newline", "\n") if same_family else "\n"
    if newline not in ("\n", "\r\n"):
        newline = "\n"

    header_text = src.get("header_text") if same_family else None
    if header_text is not None:
        src_delim = src.get("delimiter", ",")
        try:
            parsed = next(csv.reader(io.StringIO(header_text), delimiter=src_delim), [])
        except csv.Error:
            parsed = []
        if src_delim != delimiter or parsed != table.names:
            header_text = None

    with _gc_paused(), open(path, "w", encoding="utf-8", newline="") as fh:
        blank = set(src.get("empty_nan") or []) if same_family else set()
        cells = [_cells(table.columns[n], n in blank) for n in table.names]
        if same_family and src.get("bom"):
            fh.write("\ufeff")
        writer = csv.writer(fh, delimiter=delimiter, lineterminator=newline)
        if header_text is not None:
            fh.write(header_text + newline)
        else:
            writer.writerow(table.names)
        if _plain(table, cells, delimiter):
            # nothing needs quoting: joining is equivalent to csv.writer and ~2x faster
            for start in range(0, table.n_rows, _BLOCK_ROWS):
                block = [c[start : start + _BLOCK_ROWS] for c in cells]
                lines = map(delimiter.join, zip(*block, strict=True))
                fh.write(newline.join(lines) + newline)
        else:
            writer.writerows(zip(*cells, strict=True))
