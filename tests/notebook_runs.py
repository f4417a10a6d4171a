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
