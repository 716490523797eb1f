"""`balerc info`: what is in a .balerc file, and whether its checksums hold."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("info")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--no-verify", is_flag=True, help="Skip reading every stream to check checksums.")
def info_command(file: Path, as_json: bool, no_verify: bool) -> None:
    """Summarise a .balerc file: rows, columns, codecs, chunks, sizes, ratios, checksums.

    \b
    Exit status: 0 the file is whole; 1 it is damaged or unfinished (the report says
    what, and how many rows `decompress --recover` can read); 2 not a readable .balerc.
    """
    from balerc.codec.inspect import describe_file, format_description

    desc = describe_file(file, verify=not no_verify)
    click.echo(json.dumps(desc, indent=2) if as_json else format_description(desc))
    if desc.get("checksums") == "damaged" or not desc.get("complete", True):
        raise SystemExit(1)
