"""The book's PDF (`make pdf`) is there and complete: contents, every chapter, equations, figures,
bibliography."""

import concurrent.futures
import json
import multiprocessing
import os
import re
import unicodedata
from html.parser import HTMLParser

import pytest
import yaml

from conftest import ROOT

PDF = ROOT / "_build" / "pdf" / "book.pdf"
SINGLE = ROOT / "_build" / "singlehtml" / "book" / "intro.html"

pypdf = pytest.importorskip("pypdf")


def squash(text):
    """Text compared without layout: ligatures unfolded, typographic quotes plain, no whitespace."""
    text = unicodedata.normalize("NFKC", text).translate(str.maketrans("‘’“”", "''\"\""))
    return re.sub(r"\s+", "", text)


def chapter_titles():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    titles = {}
    for f in files:
        path = ROOT / (f + ".ipynb") if (ROOT / (f + ".ipynb")).exists() else ROOT / (f + ".md")
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        else:
            text = path.read_text()
        titles[f] = re.search(r"^# (.+)$", text, re.MULTILINE).group(1).strip()
    return titles


def numbered_files():
    """The chapters of the numbered parts, in order: they are chapters 1, 2, … of the book."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]


def page_texts(span):
    """The text of pages [start, stop) of the PDF (run in a worker process)."""
    reader = pypdf.PdfReader(str(PDF))
    return [reader.pages[i].extract_text() or "" for i in range(*span)]


def start_extraction():
    """Start reading the PDF's text in worker processes; (page count, pool, futures), or None
    when there is no PDF.

    pypdf parses each page's content stream in Python, so the pages are split over the cores.
    This starts when pytest collects the module, before the browser checks run, so that the
    parsing proceeds while the browser tests wait for their pages."""
    if not PDF.exists():
        return None
    count, workers = len(pypdf.PdfReader(str(PDF)).pages), min(4, os.cpu_count() or 1)
    cuts = [count * k // workers for k in range(workers + 1)]
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    return count, pool, [pool.submit(page_texts, span) for span in zip(cuts, cuts[1:])]


EXTRACTION = start_extraction()


@pytest.fixture(scope="module")
def pdf():
    if EXTRACTION is None:
        pytest.fail("_build/pdf/book.pdf is missing: `make pdf` builds it (`make test` does)")
    count, pool, parts = EXTRACTION
    try:
        pages = [text for part in parts for text in part.result()]
    finally:
        pool.shutdown()
    reader = pypdf.PdfReader(str(PDF))
    assert len(pages) == count
    return reader, pages, squash("\n".join(pages))


class Numbers(HTMLParser):
    """Equation numbers, figure count and bibliography labels of the single-page build."""

    def __init__(self):
        super().__init__()
        self.equations, self.images, self.labels = [], 0, []
        self._in = None

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if tag == "span" and cls == "eqno":
            self._in = "eq"
        elif tag == "span" and cls == "label":
            self._in = "label"
        elif tag == "img" and "/_images/" in "/" + (dict(attrs).get("src") or ""):
            self.images += 1

    def handle_data(self, data):
        if self._in == "eq" and data.strip():
            self.equations.append(data.strip())
            self._in = None
        elif self._in == "label" and data.strip() not in ("", "[", "]"):
            self.labels.append(data.strip())
            self._in = None


@pytest.fixture(scope="module")
def source():
    parsed = Numbers()
    parsed.feed(SINGLE.read_text(encoding="utf-8"))
    return parsed


def test_page_count(pdf):
    reader, pages, _ = pdf
    chapters = len(numbered_files())
    # every chapter starts on a new page and runs over several; a truncated print has far fewer
    assert len(pages) >= 8 * chapters, f"only {len(pages)} pages for {chapters} chapters"
    assert all(p.strip() for p in pages[:-1]), "blank pages inside the book"


def test_contents_and_every_chapter(pdf):
    reader, pages, text = pdf
    contents = squash(pages[0] + pages[1])
    outline = squash(" ".join(o.title for o in reader.outline if not isinstance(o, list)))
    for f, title in chapter_titles().items():
        assert squash(title) in text, f"{f}: its title {title!r} is not in the PDF"
        if f != "book/intro":
            assert squash(title) in contents, f"{title!r} is missing from the table of contents"
    numbered = [f"{i}.{squash(chapter_titles()[f])}" for i, f in enumerate(numbered_files(), 1)]
    assert all(n in text for n in numbered), "chapters are not numbered 1, 2, … in the PDF"
    assert outline, "the PDF has no bookmarks"


def test_equations_figures_bibliography(pdf, source):
    reader, pages, text = pdf
    assert source.equations, "no numbered equation in the book: the check would be vacuous"
    missing = [e for e in source.equations if squash(e) not in text]
    assert not missing, f"equation numbers missing from the PDF: {missing[:10]}"
    images = sum(image_count(p) for p in reader.pages)
    assert images >= source.images > 0, f"{images} images in the PDF, {source.images} figures in the book"
    last = max(i for i, p in enumerate(pages) if "References" in p)
    assert last > len(pages) - 10, "the References section does not end the book"
    end = squash("\n".join(pages[last:]))
    missing = [lab for lab in source.labels if squash(lab) not in end]
    assert not missing, f"bibliography entries missing at the end of the PDF: {missing[:5]}"


def image_count(page):
    """Images drawn on a PDF page (its image XObjects), without decoding them."""
    resources = page.get("/Resources")
    xobjects = resources.get_object().get("/XObject") if resources else None
    if not xobjects:
        return 0
    return sum(1 for x in xobjects.get_object().values() if x.get_object().get("/Subtype") == "/Image")
