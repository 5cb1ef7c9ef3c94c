"""The package's source and the notebooks' code fit the book's code column.

The chapters display graves' source with :func:`graves.show_source`, and the
site shows about 80 columns of code before a reader has to scroll sideways, so
every line of ``graves/*.py`` (code, comments and docstrings) takes at most 80
columns.  So does every line of every code cell of ``book/*.ipynb``, hidden or
not: a reader who opens a plotting cell's "Show code cell source" reads it in
the same column.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

import graves

MAX_COLUMNS = 80
SOURCES = sorted(Path(graves.__file__).parent.glob("*.py"))
NOTEBOOKS = sorted(
    (Path(__file__).resolve().parents[1] / "book").glob("*.ipynb")
)


def columns(line: str) -> int:
    """Columns ``line`` takes in a monospaced font: a combining mark (the hat
    of n̂) takes none, a wide East Asian character two, a tab up to eight."""
    width = 0
    for ch in line:
        if ch == "\t":
            width += 8 - width % 8
        elif unicodedata.combining(ch):
            continue
        elif unicodedata.east_asian_width(ch) in "WF":
            width += 2
        else:
            width += 1
    return width


def test_columns_counts_what_a_reader_sees():
    assert columns("n̂ ← n") == 5
    assert columns("学习率") == 6
    assert columns("\tx") == 9
    assert columns("x" * 81) == 81


def test_the_package_has_sources():
    assert len(SOURCES) > 5
    assert len(NOTEBOOKS) > 10


def wide_code_lines(notebook: dict) -> list[str]:
    """Lines wider than the code column in the code cells of ``notebook``
    (its JSON), tags included, as "cell N (tags): M columns: line"."""
    wide = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        tags = ", ".join(cell.get("metadata", {}).get("tags", [])) or "shown"
        for line in "".join(cell["source"]).splitlines():
            if columns(line) > MAX_COLUMNS:
                wide.append(
                    f"cell {index} ({tags}): {columns(line)} columns: "
                    f"{line.strip()[:60]}"
                )
    return wide


def test_wide_code_lines_finds_hidden_code():
    def cell(source, tags):
        return {
            "cell_type": "code",
            "metadata": {"tags": tags},
            "source": source.splitlines(keepends=True),
        }

    hidden = "fig, ax = plt.subplots()\nax.plot(" + "x, " * 26 + "xy);\n"
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["#" * 90]},
            cell("x = 1\n" + "#" * 80, []),  # as wide as the column: fits
            cell(hidden, ["hide-input"]),
        ]
    }
    assert wide_code_lines(notebook) == [
        "cell 2 (hide-input): 90 columns: " + hidden.splitlines()[1][:60]
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_lines_fit_the_code_column(path):
    wide = [
        f"{path.name}:{number}: {columns(line)} columns"
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if columns(line) > MAX_COLUMNS
    ]
    assert not wide, "lines wider than the book's code column:\n" + "\n".join(
        wide
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_fits_the_code_column(path):
    wide = wide_code_lines(json.loads(path.read_text("utf-8")))
    assert not wide, (
        f"{path.name}: code lines wider than the book's code column:\n"
        + "\n".join(wide)
    )
