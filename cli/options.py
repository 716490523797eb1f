"""Options shared by several commands, defined once."""

from __future__ import annotations

import re
from pathlib import Path

import click

from balerc.train.fourvec import SPEC_HELP

columns_option = click.option(
    "--columns", "columns", multiple=True, metavar="PATTERNS",
    help="Columns to keep: names or glob patterns, comma-separated or repeated (e.g. "
         "'Jet_*,MET_pt'; a name holding a comma: 'a\\,b').",
)
threads_option = click.option(
    "-T", "--threads", type=click.IntRange(1, 256), default=None,
    help="Worker threads (default: the cores this process may use, at most 8).",
)
force_option = click.option("-f", "--force", is_flag=True,
                            help="Overwrite the output if it exists.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print a machine-readable JSON summary (on stdout; on stderr when "
                                "the data itself goes to stdout with -o -).")


def split_patterns(values: tuple[str, ...], option: str = "--columns") -> list[str] | None:
    """('a*,b', 'c') -> ['a*', 'b', 'c']; 'a\\,b' is the one name 'a,b' (a backslash keeps
    a comma); no option -> None (every column). An empty value ('--columns ""', e.g. an
    unset shell variable) is refused rather than read as 'all'."""
    out = [p.strip().replace("\\,", ",") for v in values
           for p in re.split(r"(?<!\\),", v) if p.strip()]
    if values and not out:
        what = "section" if option == "--sections" else "column"
        raise click.UsageError(f"{option} {' '.join(map(repr, values))} names no {what}; "
                               f"give names or glob patterns, comma-separated, or leave the "
                               f"option out to keep every {what}")
    return out or None


tree_option = click.option(
    "--tree", default=None, help="ROOT: the TTree/RNTuple to read (default: the only one)."
)
four_vector_option = click.option(
    "--four-vector", "four_vectors", multiple=True, metavar="SPEC",
    help=f"{SPEC_HELP} Without it, groups are detected from the column names.",
)
mass_window_option = click.option(
    "--mass-window", default=None, metavar="LO,HI",
    help="Fit window of the pair-mass peak (default: around the highest peak).",
)


def data_and_tree(data: Path, tree: str | None) -> tuple[Path, str | None]:
    """DATA may be FILE.root:TREE (as for compress and train); --tree wins when given."""
    from balerc.codec.many import split_spec

    spec, spec_tree = split_spec(str(data))
    return Path(spec), tree or spec_tree
