"""`omnidrill report`: render a run's reports again from its journal (see omnidrill.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from omnidrill.report.write import FORMATS


def report(
    journal: Annotated[
        Path,
        typer.Argument(
            help="a run's journal.json, or the run's folder", show_default=False, metavar="JOURNAL"
        ),
    ],
    formats: Annotated[
        str, typer.Option("--format", "-f", help=f"any of {','.join(FORMATS)}, comma-separated")
    ] = ",".join(FORMATS),
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="folder to write to (default: the journal's)")
    ] = None,
    index: Annotated[
        bool,
        typer.Option(
            "--index/--no-index", help="also rewrite index.html and latest in the folder above"
        ),
    ] = False,
) -> None:
    """Render report.html, junit.xml and summary.md again from a run's journal."""
    from omnidrill.report.history import update_index
    from omnidrill.report.write import write_reports

    console = Console(highlight=False)
    written = write_reports(journal, out, formats)
    for path in written.files.values():
        console.print(f"wrote {path}", markup=False, soft_wrap=True)
    if index:
        console.print(f"wrote {update_index(written.out_dir.parent)}", markup=False, soft_wrap=True)
