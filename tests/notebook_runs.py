"""Helpers for executing notebooks in tests."""

from __future__ import annotations

from pathlib import Path

import nbformat


def error_outputs(notebook: Path) -> list[str]:
    """Error outputs and stderr tracebacks of an executed notebook (empty when clean)."""
    found = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"{output.get('ename')}: {output.get('evalue')}")
            elif output.get("name") == "stderr" and "Traceback" in output.get("text", ""):
                found.append(output["text"][:500])
    return found


def html_table(html: str) -> list[list[str]]:
    """The rows of the first HTML table (header row first), as text cells."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.inside = False

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag == "tr":
                self.rows.append([])
            self.inside = tag in ("td", "th")
            if self.inside:
                self.rows[-1].append("")

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.rows[-1][-1] += data.strip()

    parser = Cells()
    parser.feed(html)
    return parser.rows
