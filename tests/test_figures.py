"""Every plot follows the book's figure convention (book/book_figures.py).

The convention's checks themselves fail on planted defects (two panels in a row, small letters,
a figure too wide, another dpi), and every stored plot of every notebook was drawn by it: a PNG
at DENSITY image pixels per CSS px, with its display width (at most MAX_WIDTH) in the output's
metadata, from a notebook whose first code cell calls `book_figures.use()`. Letters and panels
are checked while the figure is drawn, so nbval's re-execution holds every notebook to them.
"""

import base64
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
import book_figures  # noqa: E402

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.fixture
def styled():
    with matplotlib.rc_context():
        book_figures.use()
        yield
    plt.close("all")


def test_a_conforming_figure_is_drawn_at_double_density(styled):
    fig, axes = plt.subplots(3, 1, figsize=(4.6, 7))
    image = axes[0].imshow([[1, 2], [3, 4]])
    fig.colorbar(image, ax=axes[0])  # a colorbar is not a panel
    axes[1].plot([1, 2, 3], label="a line")
    axes[1].legend()
    axes[1].twinx().plot([3, 2, 1])  # nor is a twin
    axes[2].inset_axes([0.6, 0.6, 0.3, 0.3])  # nor an inset
    data, width = book_figures.render(fig)
    assert book_figures.png_size(data)[0] == pytest.approx(book_figures.DENSITY * width, abs=1)
    assert width <= book_figures.MAX_WIDTH


@pytest.mark.parametrize("defect, message", [
    (lambda: plt.subplots(1, 2, figsize=(4.6, 2.4)), "2 panels side by side"),
    (lambda: plt.subplots(figsize=(6.4, 3)), "more than 474 px"),
    (lambda: plt.plot([1, 2], label="x") and plt.legend(fontsize=9), "below 10 pt"),
    (lambda: plt.subplots()[1].set_xlabel("x", fontsize=9), "below 10 pt"),
    (lambda: plt.subplots()[1].tick_params(labelsize=9), "below 10 pt"),
    (lambda: plt.subplots(dpi=72), "dpi is 72"),
], ids=["two-panels", "too-wide", "small-legend", "small-label", "small-ticks", "dpi"])
def test_a_figure_that_breaks_the_convention_is_refused(styled, defect, message):
    defect()
    with pytest.raises(ValueError, match=message):
        book_figures.render(plt.gcf())


def test_the_convention_keeps_letters_readable_on_a_phone():
    # a phone gives a figure PHONE_WIDTH px, and shrinks a wider one to it (tests/site measures it)
    scale = min(1.0, book_figures.PHONE_WIDTH / book_figures.MAX_WIDTH)
    assert book_figures.MIN_POINTS * book_figures.DPI / 72 * scale >= book_figures.PHONE_LETTERS >= 10
    assert book_figures.MIN_POINTS * book_figures.DPI / 72 >= 12.5  # and on a desktop, unscaled


def test_side_by_side_counts_rows():
    assert book_figures.side_by_side(plt.subplots(3, 2)[0]) == 2
    assert book_figures.side_by_side(plt.subplots(3, 1)[0]) == 1
    assert book_figures.side_by_side(plt.subplots(1, 4)[0]) == 4
    plt.close("all")


def first_code(cells):
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip())


def plot_outputs(nb_path):
    cells = json.loads(nb_path.read_text())["cells"]
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            for mime in output.get("data", {}):
                if mime.startswith("image/"):
                    yield f"{nb_path.name}, cell {index}", mime, output


def test_notebooks_have_plots():
    assert sum(1 for nb in NOTEBOOKS for _ in plot_outputs(nb)) > 30, "no plots found: a vacuous check"


def plot_problems(nb_path):
    outputs = list(plot_outputs(nb_path))
    if not outputs:
        return []
    problems = []
    if "book_figures.use()" not in first_code(json.loads(nb_path.read_text())["cells"]):
        problems.append(f"{nb_path.name}: the first code cell does not call book_figures.use()")
    for where, mime, output in outputs:
        if mime != "image/png":
            problems.append(f"{where}: {mime}, not a PNG drawn by book_figures")
            continue
        width = output.get("metadata", {}).get("image/png", {}).get("width")
        if not width:
            problems.append(f"{where}: no display width in the output's metadata")
            continue
        pixels = book_figures.png_size(base64.b64decode(output["data"][mime]))[0]
        if pixels < 1.5 * width:
            problems.append(f"{where}: {pixels} image px for {width} CSS px, blurred on a high-DPI screen")
        if width > book_figures.MAX_WIDTH:
            problems.append(f"{where}: {width} px wide, more than {book_figures.MAX_WIDTH}")
    return problems


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_plots_follow_the_convention(nb_path):
    problems = plot_problems(nb_path)
    assert not problems, "\n".join(problems[:10])
