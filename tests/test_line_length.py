"""The package's source fits the book's code column.

The chapters display graves' source with :func:`graves.show_source`, and the
site shows about 80 columns of code before a reader has to scroll sideways, so
every line of ``graves/*.py`` (code, comments and docstrings) takes at most 80
columns.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

import graves

MAX_COLUMNS = 80
SOURCES = sorted(Path(graves.__file__).parent.glob("*.py"))


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
