"""Notebooks are committed executed, in order, and follow the conventions nbval relies on."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "book").glob("*.ipynb"))
CHAPTERS = [p for p in NOTEBOOKS if p.name[:2].isdigit()]  # book/NN_topic; the others are translations


def code_cells(nb_path):
    cells = json.loads(nb_path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_in_order(nb_path):
    counts = [c["execution_count"] for c in code_cells(nb_path)]
    assert None not in counts, f"{nb_path.name} has unexecuted cells: run `make notebooks`"
    assert counts == list(range(1, len(counts) + 1)), f"{nb_path.name} was not run top to bottom in one kernel"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_errors_stored(nb_path):
    for cell in code_cells(nb_path):
        tags = cell.get("metadata", {}).get("tags", [])
        if "raises-exception" in tags or "NBVAL_RAISES_EXCEPTION" in "".join(cell["source"]):
            continue
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], "".join(cell["source"])[:80]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_ignore_output_is_only_for_timings(nb_path):
    for cell in code_cells(nb_path):
        src = "".join(cell["source"])
        if "NBVAL_IGNORE_OUTPUT" in src:
            assert any(w in src for w in ("time", "perf_counter", "timeit", "benchmark")), (
                f"{nb_path.name}: NBVAL_IGNORE_OUTPUT on a cell that measures no time:\n{src[:200]}"
            )
        assert "NBVAL_SKIP" not in src, f"{nb_path.name}: cells must not be skipped"


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_shape(nb_path):
    text = json.loads(nb_path.read_text())
    markdown = "".join("".join(c["source"]) for c in text["cells"] if c["cell_type"] == "markdown")
    assert "## Summary" in markdown, f"{nb_path.name} has no Summary section"
    assert markdown.count("```{exercise}") >= 3, f"{nb_path.name} needs at least three exercises"
    assert markdown.count("```{solution}") >= markdown.count("```{exercise}"), f"{nb_path.name}: every exercise needs a solution"


FILE_NAME = re.compile(r"(^|/)[\w.-]+\.(png|svg|jpe?g|gif|webp)$", re.IGNORECASE)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_have_caption_and_alt_text(nb_path):
    """Every plot is a numbered figure with a caption, and alt text that describes it for readers who
    cannot see it (myst-nb reads both from the cell's `mystnb` metadata); its plotting code sits behind
    the site's show-code toggle (`hide-input`)."""
    names = set()
    for cell in code_cells(nb_path):
        if not any(k.startswith("image/") for o in cell["outputs"] for k in o.get("data", {})):
            continue
        where = f"{nb_path.name}, cell {cell.get('id')}"
        meta = cell.get("metadata", {}).get("mystnb", {})
        figure, alt = meta.get("figure", {}), meta.get("image", {}).get("alt", "")
        assert figure.get("caption", "").strip(), f"{where}: figure without mystnb.figure.caption"
        assert figure.get("name"), f"{where}: figure without mystnb.figure.name (its label)"
        assert figure["name"] not in names, f"{where}: figure name {figure['name']} used twice"
        names.add(figure["name"])
        assert len(alt.split()) >= 8 and not FILE_NAME.search(alt), (
            f"{where}: mystnb.image.alt must describe the plot in words: {alt!r}")
        assert "hide-input" in cell["metadata"].get("tags", []), f"{where}: plotting code not tagged hide-input"
