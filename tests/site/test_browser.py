"""Open every page of the built site in headless Chromium and check what a reader sees.

Uses Debian's /usr/bin/chromium through Playwright; no browser is downloaded.  The site is served
over a localhost HTTP server.  Each page is checked on a desktop (1280 px) in light mode, then on
a phone (390 px) in dark mode:

- math is typeset, images load, no console error, nothing is fetched from another host;
- axe-core (tests/site/vendor/axe.min.js) finds no critical or serious violation: every rule on
  the desktop in light mode, and again the rules that depend on colours in dark mode;
- no element ID is repeated; no Markdown table is left as raw text; every image has alt text that
  is not a file name; no heading is numbered twice ("8.3. 1. ...");
- a link in a dropdown's title navigates without a script error;
- on the phone no text, formula or figure is cut off by the edge of the screen (wide content must
  scroll inside its own box), and the page itself does not scroll sideways;
- the sidebar button opens the chapter list on the phone and collapses the sidebar on the desktop.

Screenshots of both views go to _build/screenshots/.
"""

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from conftest import HTML, ROOT, pages

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "_build" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing; .ci/run installs it with apt-get", pytrace=False)
    pytest.skip("no /usr/bin/chromium: install Debian's chromium to run the browser check", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def base_url(html_root):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html_root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield b
        b.close()


PAGES = [p.relative_to(HTML).as_posix() for p in pages()] if HTML.exists() else []
REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)"', re.IGNORECASE)
# pages with reading content (the search and index pages are the theme's own)
CONTENT = [p for p in PAGES if p.startswith("book/")]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def open_page(browser, base_url, page, viewport, mode):
    """A tab on `page` in colour `mode`, loaded, math typeset and every image loaded."""
    ctx = browser.new_context(viewport=viewport, color_scheme=mode)
    ctx.add_init_script(f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');")
    tab = ctx.new_page()
    tab.errors, tab.external = [], []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.route("**/*", lambda route: (tab.external.append(route.request.url), route.abort())
              if not route.request.url.startswith(base_url) and not route.request.url.startswith("data:")
              else route.continue_())
    redirect = REFRESH.search((HTML / page).read_text(errors="replace"))
    if redirect:
        # a redirect stub (the site's index.html): the page must land on its target,
        # and the checks run there, after the second navigation has finished
        with tab.expect_navigation(url=f"{base_url}/{redirect.group(1)}", wait_until="load"):
            tab.goto(f"{base_url}/{page}", wait_until="commit")
    else:
        tab.goto(f"{base_url}/{page}", wait_until="load")
    if tab.locator(".math").count():
        tab.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30000)
        tab.evaluate("() => MathJax.startup.promise")
    tab.evaluate("() => document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
    tab.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=30000)
    assert tab.evaluate("() => document.documentElement.dataset.theme") == mode
    return ctx, tab


def shot(tab, page, suffix):
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / (page.replace("/", "__").removesuffix(".html") + suffix + ".png")))


def axe(tab, rules=None):
    """axe-core's critical and serious violations on the page, as readable lines."""
    if not tab.evaluate("() => !!window.axe"):
        tab.add_script_tag(path=str(AXE))
    options = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = {"type": "rule", "values": rules}
    found = tab.evaluate("async (o) => (await axe.run(document, o)).violations", options)
    return [f"{v['id']} ({v['impact']}): {n['target']} {n.get('failureSummary', '')[:160]}"
            for v in found if v["impact"] in ("critical", "serious") for n in v["nodes"]]


# the file name matplotlib's outputs get as alt text when the notebook gives none
FILE_NAME = re.compile(r"(^|/)[\w.-]+\.(png|svg|jpe?g|gif|webp)$", re.IGNORECASE)

PAGE_FACTS = """() => {
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
  const repeated = [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, .highlight, script, style').forEach(e => e.remove());
  const rawTables = (prose.textContent.match(/\\|\\s*:?-{3,}:?\\s*\\|/g) || []);
  const images = Array.from(document.querySelectorAll('article img')).map(i => ({
    src: i.getAttribute('src'), alt: i.getAttribute('alt')}));
  const twice = Array.from(document.querySelectorAll('article h1, article h2, article h3, article h4'))
    .map(h => h.textContent.trim()).filter(t => /^\\d+(\\.\\d+)*\\.\\s+\\d+[.)]\\s/.test(t));
  return {repeated, rawTables, images, twice};
}"""


@pytest.mark.parametrize("page", PAGES)
def test_desktop_light(browser, base_url, page):
    ctx, tab = open_page(browser, base_url, page, DESKTOP, "light")
    try:
        if tab.locator(".math").count():
            assert tab.locator("mjx-container").count() > 0, "math present but MathJax rendered nothing"
            body = tab.locator("article").inner_text() if tab.locator("article").count() else tab.inner_text("body")
            assert "$$" not in body and "\\(" not in body and "\\[" not in body, "raw TeX left on the page"
        broken = tab.evaluate("() => Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.src)")
        assert not broken, f"images that did not load: {broken}"

        facts = tab.evaluate(PAGE_FACTS)
        assert not facts["repeated"], f"element IDs used more than once: {facts['repeated']}"
        assert not facts["rawTables"], f"Markdown table text left unrendered: {facts['rawTables'][:3]}"
        assert not facts["twice"], f"headings numbered twice: {facts['twice']}"
        for img in facts["images"]:
            alt = (img["alt"] or "").strip()
            assert alt and not FILE_NAME.search(alt) and alt != img["src"], (
                f"image {img['src']} has no real alt text: {img['alt']!r}")

        shot(tab, page, "")
        violations = axe(tab)
        assert not violations, "axe-core, light mode:\n" + "\n".join(violations)

        # a link in a dropdown title (a solution's "Exercise 1.1") navigates, without a script error
        title_link = tab.locator(".dropdown .admonition-title a")
        if title_link.count():
            href = title_link.first.get_attribute("href")
            title_link.first.scroll_into_view_if_needed()
            title_link.first.click()
            tab.wait_for_timeout(200)
            assert tab.url.endswith(href), f"the link in a solution title did not go to {href}"

        assert not tab.external, f"the page tried to reach other hosts: {tab.external}"
        assert not tab.errors, f"console errors: {tab.errors}"
    finally:
        ctx.close()


CLIPPED = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (e) => { const s = getComputedStyle(e); return /(auto|scroll)/.test(s.overflowX) && e.scrollWidth > 0; };
  const inScroller = (e) => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (scrolls(a)) { const r = a.getBoundingClientRect(); return r.left >= -1 && r.right <= width + 1; } }
    return false; };
  const hidden = (e) => { const s = getComputedStyle(e);
    return s.visibility === 'hidden' || s.display === 'none' || e.closest('dialog:not([open]), .toggle-hidden, details:not([open]) > :not(summary)'); };
  const out = [];
  const seen = new Set();
  document.querySelectorAll('.bd-article *').forEach(e => {
    const isMath = e.tagName === 'MJX-CONTAINER';
    const hasText = Array.from(e.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!(isMath || hasText || e.tagName === 'IMG' || e.tagName === 'TABLE')) return;
    if (e.closest('mjx-container') && !isMath) return;
    const r = e.getBoundingClientRect();
    if (r.width === 0 || hidden(e)) return;
    if (r.right <= width + 1 && r.left >= -1) return;
    if (inScroller(e)) return;
    const what = (e.tagName + ': ' + (e.textContent || e.getAttribute('src') || '')).replace(/\\s+/g, ' ').slice(0, 90);
    if (!seen.has(what)) { seen.add(what); out.push(what); }
  });
  return {out, pageScroll: document.documentElement.scrollWidth - width};
}"""


@pytest.mark.parametrize("page", CONTENT)
def test_phone_dark(browser, base_url, page):
    ctx, tab = open_page(browser, base_url, page, PHONE, "dark")
    try:
        # open every solution with its button, as a reader would
        tab.evaluate("() => document.querySelectorAll('.toggle-hidden .toggle-button').forEach(b => b.click())")
        tab.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        assert not tab.locator(".dropdown.toggle-hidden").count(), "a solution did not open"
        tab.wait_for_timeout(500)
        clipped = tab.evaluate(CLIPPED)
        assert not clipped["out"], "cut off at the edge of a 390 px screen:\n" + "\n".join(clipped["out"][:15])
        assert clipped["pageScroll"] <= 1, f"the page scrolls sideways by {clipped['pageScroll']} px on a phone"
        shot(tab, page, "-390-dark")
        violations = axe(tab, ["color-contrast", "link-in-text-block"])
        assert not violations, "axe-core, dark mode:\n" + "\n".join(violations)
        assert not tab.errors, f"console errors: {tab.errors}"
    finally:
        ctx.close()


def chapter_links(scope):
    return scope.locator("a.reference.internal[href$='.html'], a.reference.internal[href*='.html#']")


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_sidebar_button(browser, base_url, mode):
    page = CONTENT[len(CONTENT) // 2]
    # phone: the visible menu button opens the chapter list
    ctx, tab = open_page(browser, base_url, page, PHONE, mode)
    try:
        button = tab.locator(".bd-header-article .primary-toggle")
        assert button.is_visible()
        button.click()
        dialog = tab.locator("#pst-primary-sidebar-modal")
        dialog.wait_for(state="visible", timeout=5000)
        listed = [t.strip() for t in dialog.locator("nav.bd-links a").all_inner_texts()]
        assert len(listed) >= len(CONTENT) - 1, f"the chapter list shows only {listed}"
        shot(tab, page, f"-390-{mode}-menu")
        tab.keyboard.press("Escape")
        dialog.wait_for(state="hidden", timeout=5000)
        # the contents button opens this page's sections
        tab.locator(".bd-header-article .secondary-toggle").click()
        tab.locator("#pst-secondary-sidebar-modal").wait_for(state="visible", timeout=5000)
        assert not tab.errors, f"console errors: {tab.errors}"
    finally:
        ctx.close()
    # desktop: the same button collapses the sidebar and brings it back
    ctx, tab = open_page(browser, base_url, page, DESKTOP, mode)
    try:
        sidebar = tab.locator("#pst-primary-sidebar")
        assert sidebar.is_visible()
        tab.locator(".bd-header-article .primary-toggle").click()
        tab.wait_for_timeout(400)
        assert not sidebar.is_visible(), "the sidebar button did not collapse the sidebar"
        assert not tab.locator("#pst-primary-sidebar-modal").is_visible()
        shot(tab, page, f"-{mode}-collapsed")
        tab.locator(".bd-header-article .primary-toggle").click()
        tab.wait_for_timeout(400)
        assert sidebar.is_visible(), "the sidebar button did not bring the sidebar back"
        assert not tab.errors, f"console errors: {tab.errors}"
    finally:
        ctx.close()
