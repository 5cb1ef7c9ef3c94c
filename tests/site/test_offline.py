"""The built site reads offline: nothing is loaded from another host, and math uses the local MathJax."""

import re
from html.parser import HTMLParser
from pathlib import Path

from conftest import HTML, pages


class Loads(HTMLParser):
    """Collects every URL a page loads as a script or stylesheet."""

    def __init__(self):
        super().__init__()
        self.scripts, self.styles = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag == "link" and "stylesheet" in (a.get("rel") or "") and a.get("href"):
            self.styles.append(a["href"])


def parse(page: Path) -> Loads:
    p = Loads()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def is_external(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url))


def test_there_are_pages(html_root):
    names = {p.name for p in pages()}
    assert "intro.html" in names and len(names) >= 2


def test_no_page_loads_an_external_script_or_stylesheet(html_root):
    for page in pages():
        loads = parse(page)
        external = [u for u in loads.scripts + loads.styles if is_external(u)]
        assert not external, f"{page.relative_to(HTML)} loads {external}"


def test_pages_with_math_load_the_local_mathjax(html_root):
    with_math = 0
    for page in pages():
        text = page.read_text(encoding="utf-8")
        if 'class="math' not in text:
            continue
        with_math += 1
        scripts = parse(page).scripts
        local = [s for s in scripts if "mathjax/tex-chtml.js" in s and not is_external(s)]
        assert local, f"{page.relative_to(HTML)} has math but loads no local MathJax: {scripts}"
        target = (page.parent / local[0].split("?")[0]).resolve()
        assert target.is_file(), f"{page.relative_to(HTML)} points at a missing {target}"
    assert with_math >= 1, "no page with math was found; the check would be vacuous"
