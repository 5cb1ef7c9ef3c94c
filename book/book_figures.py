"""The book's figure convention: every plot sharp on any screen and readable on a phone.

Every notebook that plots calls ``book_figures.use()`` in its first code cell. From then on every
matplotlib figure the notebook shows

- is stored as a PNG drawn at ``DENSITY`` times its display size, with the display width in the
  output's metadata (myst-nb gives the page's image that width), so that a high-DPI screen shows
  it sharp and no screen enlarges it;
- is at most ``MAX_WIDTH`` CSS px wide once cropped (``MAX_WIDTH / DPI`` inches): the text column
  holds it unscaled on a 1280 px screen, and a 390 px phone, which gives a figure
  ``PHONE_WIDTH`` px, shrinks it to no less than 72 % of its size;
- letters everything (ticks, labels, legends, titles, annotations) at ``MIN_POINTS`` pt or more:
  at least 13.9 CSS px on a desktop and ``PHONE_LETTERS`` (10) on a phone;
- puts ``MAX_PANELS_SIDE_BY_SIDE`` panel in a row: further panels go below it (a colorbar beside
  its heat map is no panel), since two panels side by side would halve the letters on a phone.

A figure that breaks a rule is not shown: the formatter raises ``ValueError`` naming the rule, and
the cell's output holds that error, which ``make notebooks``, nbval and tests/test_notebooks.py
report. Outside IPython, ``use()`` only sets the style, and ``render`` checks and draws a figure.
"""

import struct
from io import BytesIO

import matplotlib
from matplotlib.figure import Figure
from matplotlib.text import Text

DPI = 100  # figure pixels per inch at display size: 1 in = 100 CSS px
DENSITY = 2  # image pixels per CSS px
MIN_POINTS = 10  # smallest letters, pt (13.9 CSS px at display size)
PHONE_WIDTH = 342  # CSS px a 390 px phone gives a figure: the text column less the figure's margins
PHONE_LETTERS = 10  # CSS px, the smallest letters on that phone
# CSS px after cropping to the drawn content (4.74 in): a phone shrinks such a figure to PHONE_WIDTH,
# and its smallest letters to PHONE_LETTERS or more (MIN_POINTS * DPI / 72 * PHONE_WIDTH / MAX_WIDTH)
MAX_WIDTH = 474
MAX_PANELS_SIDE_BY_SIDE = 1

STYLE = {
    "figure.dpi": DPI,
    "figure.figsize": (4.6, 3.2),  # one panel; two stacked: (4.6, 5.6)
    "figure.facecolor": "white",  # dark mode inverts plots drawn on white (book/_static/site.css)
    "font.size": MIN_POINTS,
    "legend.fontsize": MIN_POINTS,
    "axes.titlesize": MIN_POINTS,
    "xtick.labelsize": MIN_POINTS,
    "ytick.labelsize": MIN_POINTS,
}


def png_size(data):
    """(width, height) in pixels of PNG bytes."""
    return struct.unpack(">II", data[16:24])


def _panels(fig):
    """Positions of the figure's panels: its axes less colorbars, twins counted once."""
    boxes = []
    for ax in fig.axes:
        if getattr(ax, "_colorbar", None) is not None or not ax.get_visible():
            continue
        box = tuple(round(v, 3) for v in ax.get_position().extents)
        if box not in boxes:
            boxes.append(box)
    return boxes


def side_by_side(fig):
    """The largest number of panels that share a row (overlap by half their height)."""
    boxes = _panels(fig)

    def same_row(a, b):
        overlap = min(a[3], b[3]) - max(a[1], b[1])
        return overlap > 0.5 * min(a[3] - a[1], b[3] - b[1])

    return max((sum(same_row(a, b) for b in boxes) for a in boxes), default=0)


def small_text(fig):
    """The figure's visible texts lettered below MIN_POINTS, as (text, size in pt)."""
    return [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_POINTS - 1e-9
    ]


def render(fig):
    """PNG bytes of `fig` at DENSITY times display size, and its display width in CSS px.

    Raises ValueError if the figure breaks the convention."""
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi * DENSITY, bbox_inches="tight",
                facecolor=fig.get_facecolor(), edgecolor=fig.get_edgecolor())
    data = buffer.getvalue()  # drawing the figure also lays out its ticks and legends
    problems = []
    if fig.dpi != DPI:
        problems.append(f"figure dpi is {fig.dpi}, expected {DPI} (book_figures.use() sets it)")
    width = png_size(data)[0] / DENSITY
    if width > MAX_WIDTH + 0.5:
        problems.append(f"{width:.0f} px wide after cropping, more than {MAX_WIDTH} px "
                        f"({MAX_WIDTH / DPI:.1f} in): make figsize narrower")
    panels = side_by_side(fig)
    if panels > MAX_PANELS_SIDE_BY_SIDE:
        problems.append(f"{panels} panels side by side, at most {MAX_PANELS_SIDE_BY_SIDE}: "
                        "stack them, one per row")
    small = small_text(fig)
    if small:
        listed = ", ".join(f"{text[:30]!r} at {size:g} pt" for text, size in small[:5])
        problems.append(f"{len(small)} texts below {MIN_POINTS} pt: {listed}")
    if problems:
        raise ValueError("figure breaks the book's figure convention (book/book_figures.py): "
                         + "; ".join(problems))
    return data, round(width)


def _png_formatter(fig):
    if not fig.axes and not fig.lines:
        return None  # an empty figure shows nothing, as with IPython's own formatter
    data, width = render(fig)
    # only the width: the page keeps the height proportional when a phone narrows the image
    return data, {"width": width}


def use():
    """Apply the book's style and, in IPython, show every figure by the convention."""
    # loading the backend first lets Jupyter's inline backend set itself up (its rc settings and
    # figure formatters), so that the style and the formatter below replace its own
    import matplotlib.pyplot as plt

    plt.switch_backend(matplotlib.get_backend())

    matplotlib.rcParams.update(STYLE)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    for mime in ("image/svg+xml", "image/jpeg", "application/pdf"):
        formatters[mime].pop(Figure, None)
    formatters["image/png"].for_type(Figure, _png_formatter)
