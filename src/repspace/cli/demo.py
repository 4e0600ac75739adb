"""CLI: demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Output directory (spaces/ and report.html)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use N evenly spaced articles (a quick look)."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Run the main job on the built-in defaults and write an HTML report."""
    from repspace.demo import run_demo

    path = run_demo(out, limit=limit, progress=not quiet)
    Console(stderr=True).print(f"report: {path}")
