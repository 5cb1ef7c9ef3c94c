"""Details of the built site that Sphinx and its extensions leave to the book.

- One citation style: the bibliography labels each entry exactly as the text cites it
  ("Graves, 2013"), instead of alpha labels ("Gra13") beside author-year citations.
- Valid ARIA for the bibliography and for hidden code cells, and no duplicate element IDs from
  sphinx-exercise.
- Plots that fill areas with colour (heat maps) are marked `plot-filled`, so that dark mode shows
  them as drawn instead of inverted (book/_static/site.css).
"""

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from string import ascii_lowercase

import numpy as np
from docutils import nodes
from PIL import Image

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle
from sphinx.transforms.post_transforms import SphinxPostTransform


def _surname(person):
    return " ".join(str(part) for part in person.rich_last_names)


def author_year(entry):
    """The label sphinxcontrib-bibtex's author_year style prints for ``{cite}`` of ``entry``."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in persons]
    if len(names) >= 2 and names[-1] == "others":
        who = f"{names[0]} et al." if len(names) > 2 else f"{names[0]} and others"
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    elif names:
        who = f"{names[0]} et al."
    else:
        who = entry.key
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        labels = [author_year(e) for e in sorted_entries]
        repeated, seen = Counter(labels), Counter()
        for label in labels:
            # two works of one author in one year: 2013a, 2013b
            if repeated[label] > 1:
                seen[label] += 1
                label += ascii_lowercase[seen[label] - 1]
            yield label


class ByLabel(BaseSortingStyle):
    """Alphabetical by the label the reader sees, then by title."""

    def sorting_key(self, entry):
        return author_year(entry).casefold(), entry.fields.get("title", "").casefold()


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "book_author_year"
    default_sorting_style = "book_by_label"


register_plugin("pybtex.style.labels", "book_author_year", AuthorYearLabels)
register_plugin("pybtex.style.sorting", "book_by_label", ByLabel)
register_plugin("pybtex.style.formatting", "book_author_year", AuthorYearStyle)

# sphinx-exercise gives every exercise and solution body the same ID
_FIXED_IDS = re.compile(r'<section id="(exercise-content|solution-content)">')


def fix_page(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if not body:
        return
    # docutils marks entries with the deprecated doc-biblioentry role inside a role="list"
    body = body.replace('role="doc-biblioentry"', 'role="listitem"')
    body = _FIXED_IDS.sub(r'<section class="\1">', body)
    # a hidden cell's summary reads "Show code cell source"; a fixed aria-label hid that text
    body = body.replace('<summary aria-label="Toggle hidden content">', "<summary>")
    context["body"] = body


def share_html_handlers(app):
    """Give the single-page builder every node renderer registered for "html".

    Extensions register their nodes for the "html" format (myst-nb's hidden cells, sphinx-design's
    dropdowns); once any extension registers a node for "singlehtml" by name, Sphinx looks only in
    that builder's own table, and the rest are missing from `make pdf`'s single-page build."""
    if app.builder.name != "singlehtml":
        return
    handlers = app.registry.translation_handlers
    single = handlers.setdefault("singlehtml", {})
    for node, visitors in handlers.get("html", {}).items():
        single.setdefault(node, visitors)


# Share of a plot's pixels that are coloured or dark. Line plots on white stay below 0.15 (lines,
# markers, text); a heat map covers about half its area with colour.
FILLED = 0.3


@lru_cache(maxsize=None)
def filled_share(path: str) -> float:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((300, 300))
        px = np.asarray(im, dtype=np.int16)
    top, bottom = px.max(axis=2), px.min(axis=2)
    return float(((top - bottom >= 40) | (top < 100)).mean())


class MarkFilledPlots(SphinxPostTransform):
    default_priority = 400

    def run(self, **kwargs):
        for image in self.document.findall(nodes.image):
            uri = image.get("uri", "")
            path = Path(self.app.srcdir, uri)
            if uri.lower().endswith(".png") and path.is_file() and filled_share(str(path)) >= FILLED:
                image["classes"].append("plot-filled")


def setup(app):
    app.add_post_transform(MarkFilledPlots)
    app.connect("builder-inited", share_html_handlers)
    app.connect("html-page-context", fix_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
