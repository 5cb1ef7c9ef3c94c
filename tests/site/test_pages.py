"""What the built pages show in code and outputs, read from the HTML (no browser needed).

- Code cells show no notebook plumbing (`glue(`, `NBVAL_`): book/_ext/hide_plumbing.py leaves it
  out of the page, and the notebook a reader downloads (`_sources/`) is the notebook itself, every
  line kept.
- Outputs show no path of the machine that ran the notebook: no /tmp/ipykernel_... file from a
  profile or a warning, no absolute path of the repository or of an installed package from a
  traceback.
"""

import re
from html.parser import HTMLParser

import pytest

from conftest import HTML, ROOT, pages


class Blocks(HTMLParser):
    """The text of every element whose class list has `cls`, nested elements included."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, cls):
        super().__init__(convert_charrefs=True)
        self.cls, self.blocks, self.depth = cls, [], 0

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        if self.depth:
            self.depth += 1
        elif self.cls in (dict(attrs).get("class") or "").split():
            self.depth = 1
            self.blocks.append([])

    def handle_endtag(self, tag):
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.blocks[-1].append(data)


def blocks(page, cls):
    parser = Blocks(cls)
    parser.feed(page.read_text(encoding="utf-8"))
    return ["".join(b) for b in parser.blocks]


BOOK_PAGES = [p for p in pages() if p.relative_to(HTML).parts[0] == "book"] if HTML.exists() else []
PLUMBING = re.compile(r"\bglue\(|NBVAL_")


def test_pages_have_code_cells(html_root):
    assert sum(len(blocks(p, "cell_input")) for p in BOOK_PAGES) > 100, "no code cells found: a vacuous check"


@pytest.mark.parametrize("page", BOOK_PAGES, ids=lambda p: p.name)
def test_code_cells_show_no_plumbing(html_root, page):
    shown = [b for b in blocks(page, "cell_input") if PLUMBING.search(b)]
    assert not shown, "plumbing shown in a code cell:\n" + "\n---\n".join(
        "\n".join(line for line in b.splitlines() if PLUMBING.search(line)) for b in shown)[:2000]


def test_downloaded_notebooks_keep_every_line(html_root):
    notebooks = sorted((ROOT / "book").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        download = HTML / "_sources" / "book" / nb.name
        assert download.read_bytes() == nb.read_bytes(), f"the downloadable {nb.name} differs from the notebook"


# Paths of the machine that executed a notebook. A traceback frame names its file ("File /…/x.py:12");
# a profile or warning names the kernel's temporary cell files (/tmp/ipykernel_1234/567.py).
MACHINE_PATH = re.compile(
    r"ipykernel_\d+|/tmp/|/var/folders/|site-packages|dist-packages|\bFile (/|[A-Za-z]:\\)"
    r"|(^|[\s\"'(=])(/home/|/Users/|/root/|/work/|[A-Za-z]:\\Users\\)"
    + "|" + re.escape(str(ROOT)),
    re.MULTILINE,
)


@pytest.mark.parametrize("page", BOOK_PAGES, ids=lambda p: p.name)
def test_outputs_show_no_machine_paths(html_root, page):
    found = []
    for block in blocks(page, "cell_output"):
        for line in block.splitlines():
            if MACHINE_PATH.search(line):
                found.append(line.strip()[:160])
    assert not found, f"{len(found)} output lines name paths of the machine that ran the notebook:\n" + "\n".join(found[:10])


def test_machine_path_pattern():
    hits = ["File /work/wt/x/graves/optimizers.py:228, in Optimizer.update",
            "     1    0.000    0.000 /tmp/ipykernel_31474/1449977218.py:7(update)",
            "C:\\Users\\me\\graves\\core.py:3: RuntimeWarning", "/home/me/venv/lib/python3.11/site-packages/numpy/x.py",
            f"saved to {ROOT}/out.npz"]
    misses = ["Cell In[13], line 3", "FloatingPointError: non-finite gradient for key 'w'",
              "ratio 2/3 = 0.667", "see chapter 7/8", "lr/sqrt(eps)"]
    assert all(MACHINE_PATH.search(h) for h in hits)
    assert not any(MACHINE_PATH.search(m) for m in misses)
