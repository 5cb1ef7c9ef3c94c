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
- on the phone no text, formula or figure is cut off, neither by the edge of the screen nor by a
  box that hides its overflow (wide content must scroll inside its own box), the page itself does
  not scroll sideways, and every box that scrolls sideways shows a scroll cue (site.css);
- in dark mode, plots are shown inverted except those that fill areas with colour (heat maps),
  which are shown as drawn;
- the widest display equation scrolls to its end on a phone, in light and dark mode;
- the sidebar button opens the chapter list on the phone and collapses the sidebar on the desktop;
- on the desktop, with every solution and the hidden code of every plotting cell ("Show code cell
  source") open, no code block or output (`pre`) scrolls sideways: the column holds 80 columns of
  code (site.css), and code and outputs keep to them;
- every plot is sharp and its letters readable (book/book_figures.py): the image carries its
  display width, has at least 1.5 image pixels per CSS px shown on the desktop, and its smallest
  letters (`MIN_POINTS` at display width) measure at least 12.5 CSS px there and 10 on the phone.

The pages are checked several at a time, in separate browser contexts of one Chromium: while one
page runs axe-core, the next ones load and typeset their math (see `run_jobs`).

Screenshots go to _build/screenshots/.
"""

import os
import re
import sys
import time
from collections import deque
from functools import partial
from pathlib import Path

import pytest

from conftest import HTML, ROOT, pages, require_chromium

PlaywrightTimeout = require_chromium().TimeoutError

SHOTS = ROOT / "_build" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# pages in flight at once; each has its own renderer process
IN_FLIGHT = max(2, min(4, (os.cpu_count() or 2) + 1))
TIMEOUT = 120_000  # ms; pages load side by side on a busy machine

PAGES = [p.relative_to(HTML).as_posix() for p in pages()] if HTML.exists() else []
REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)"', re.IGNORECASE)
# pages with reading content (the search and index pages are the theme's own)
CONTENT = [p for p in PAGES if p.startswith("book/")]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

sys.path.insert(0, str(ROOT / "book"))
import book_figures  # noqa: E402  (the figure convention the notebooks draw by)

# letters of a plot, in CSS px: the smallest (book_figures.MIN_POINTS) at the least; on the phone,
# the convention's own figure
DESKTOP_LETTERS, PHONE_LETTERS = 12.5, book_figures.PHONE_LETTERS


def start_page(browser, base_url, page, viewport, mode, axe=False):
    """A tab navigating to `page` in colour `mode`; returns once the navigation has started.
    With `axe`, axe-core loads with the page, in its renderer, while other pages are driven."""
    ctx = browser.new_context(viewport=viewport, color_scheme=mode)
    ctx.set_default_timeout(TIMEOUT)
    ctx.add_init_script(f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');")
    if axe:
        ctx.add_init_script(path=str(AXE))
    tab = ctx.new_page()
    tab.errors, tab.external, tab.signals = [], [], {}
    tab.on("console", partial(listen, tab))
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
        tab.goto(f"{base_url}/{page}", wait_until="commit")
    return ctx, tab


# True once the page is loaded, its math typeset (MathJax's startup promise resolved) and every
# image loaded; a failed typesetting is reported, not waited for.
LOADED = """() => {
  if (document.readyState !== 'complete') return false;
  if (document.querySelector('.math')) {
    if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return false;
    if (window.__typeset === undefined) {
      window.__typeset = false;
      MathJax.startup.promise.then(() => { window.__typeset = true; },
                                   e => { window.__typeset = 'MathJax failed: ' + e; });
    }
    if (window.__typeset !== true) return window.__typeset || false;
  }
  document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; });
  return Array.from(document.images).every(i => i.complete);
}"""

# a job's yield that means "waiting for the page", as opposed to "started something"
PENDING = "pending"


# a console.debug message with this prefix reports that a wait in the page has ended (see `until`)
SIGNAL = "__site-check "


def listen(tab, message):
    """Console errors go to `tab.errors`, the page's signals to `tab.signals`."""
    if message.type == "error":
        tab.errors.append(message.text)
    elif message.type == "debug" and message.text.startswith(SIGNAL):
        key, _, state = message.text[len(SIGNAL):].partition(" ")
        tab.signals[key] = state


def until(tab, predicate, what, timeout=TIMEOUT):
    """Yield PENDING until `predicate` (a JavaScript function) returns true in the page; raise its
    message if it returns a string, and a timeout after `timeout` ms.

    The page asks `predicate` itself, every 20 ms, and says when it is done on the console.  Asking
    from here would wait for a renderer busy with typesetting or axe-core, while the other pages
    wait for their next step."""
    key = f"{len(tab.signals)}-{time.monotonic_ns()}"
    tab.signals[key] = None
    tab.evaluate("""([key, prefix]) => { const predicate = (%s);
        const ask = () => { let state;
          try { state = predicate(); } catch (e) { state = String(e); }
          if (state === true) console.debug(prefix + key + ' ');
          else if (typeof state === 'string') console.debug(prefix + key + ' ' + (state || 'failed'));
          else setTimeout(ask, 20); };
        ask(); }""" % predicate, [key, SIGNAL])
    deadline = time.monotonic() + timeout / 1000
    while True:
        tab.wait_for_timeout(0)  # a round trip to Playwright's driver, not to the page: delivers its messages
        state = tab.signals[key]
        if state == "":
            return
        if state is not None:
            raise AssertionError(state)
        if time.monotonic() > deadline:
            raise PlaywrightTimeout(f"{what}: not done after {timeout} ms")
        yield PENDING


def loading(tab, mode):
    """Wait (yielding to other jobs) until the page is loaded, its math typeset and every image
    loaded."""
    yield from until(tab, LOADED, "loading the page, its math and its images")
    assert tab.evaluate("() => document.documentElement.dataset.theme") == mode


def finish_loading(tab, mode):
    """Wait until the page is loaded, its math typeset and every image loaded."""
    for _ in loading(tab, mode):
        time.sleep(0.02)


def open_page(browser, base_url, page, viewport, mode):
    """A tab on `page` in colour `mode`, loaded, math typeset and every image loaded."""
    ctx, tab = start_page(browser, base_url, page, viewport, mode)
    try:
        finish_loading(tab, mode)
    except BaseException:
        ctx.close()
        raise
    return ctx, tab


def run_jobs(jobs, in_flight=IN_FLIGHT):
    """Run generator jobs side by side; {key: what the job returned, or the exception it raised}.

    A job yields after starting something the browser does on its own (a navigation, an axe-core
    run), and yields PENDING while it waits for the page to finish it; the next job then runs
    until it yields.  Only one job talks to Playwright at a time, and none blocks it while its page
    works: up to `in_flight` pages load, typeset and run axe-core in their renderers at once.  When
    every job in flight is waiting, the loop pauses briefly before asking again."""
    results, waiting, active = {}, deque(jobs.items()), deque()

    def advance(key, gen):
        """(still running, waiting for its page)"""
        try:
            return True, next(gen) == PENDING
        except StopIteration as done:
            results[key] = done.value
        except Exception as error:  # noqa: BLE001  (kept for the test of that page, which raises it)
            results[key] = error
        return False, False

    idle = 0  # jobs in a row that were waiting for their page
    while waiting or active:
        while waiting and len(active) < in_flight:
            key, make = waiting.popleft()
            gen = make()
            running, _ = advance(key, gen)
            if running:
                active.append((key, gen))
        key, gen = active.popleft()
        running, pending = advance(key, gen)
        if running:
            active.append((key, gen))
        idle = idle + 1 if pending else 0
        if idle >= len(active) > 0:
            time.sleep(0.02)
            idle = 0
    return results


def outcome(results, key):
    """What the job `key` returned; raises what it raised."""
    value = results[key]
    if isinstance(value, BaseException):
        raise value
    return value


# a predicate for `until`: true once the animations and transitions running at its first call have
# ended and a frame has been rendered after them
SETTLED = """(() => { let settled;
  return () => {
    if (settled === undefined) {
      settled = false;
      Promise.all(document.getAnimations().map(a => a.finished.catch(() => null)))
        .then(() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done))))
        .then(() => { settled = true; });
    }
    return settled;
  }; })()"""


def settling(tab):
    """Wait for SETTLED, yielding PENDING to other jobs while the page's animations run."""
    yield from until(tab, SETTLED, "animations and a frame")


def settle(tab):
    """`settling`, for a caller with no other job to run meanwhile."""
    for _ in settling(tab):
        tab.wait_for_timeout(20)


def shot(tab, page, suffix):
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / (page.replace("/", "__").removesuffix(".html") + suffix + ".png")))


def start_axe(tab, rules=None):
    """Start axe-core on the page; `axe_result` collects its critical and serious violations.

    axe.run does much of its work before it returns its promise; started from a timer, that work
    runs in the page's renderer while this thread drives the other pages."""
    if not tab.evaluate("() => !!window.axe"):
        tab.add_script_tag(path=str(AXE))
    options = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = {"type": "rule", "values": rules}
    tab.evaluate("""(o) => { window.__axeDone = false;
        window.__axeRun = new Promise(go => setTimeout(go, 0))
          .then(() => axe.run(document, o)).then(r => r.violations)
          .finally(() => { window.__axeDone = true; }); }""", options)


def axe_result(tab):
    """The critical and serious violations of the axe-core run started last (yields PENDING until
    it has finished)."""
    yield from until(tab, "() => window.__axeDone", "axe-core")
    found = tab.evaluate("() => window.__axeRun")
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


def desktop_job(browser, base_url, page):
    ctx, tab = start_page(browser, base_url, page, DESKTOP, "light", axe=True)
    try:
        yield  # the page loads while other jobs run
        yield from loading(tab, "light")
        if REFRESH.search((HTML / page).read_text(errors="replace")):
            # a redirect stub has landed on its target (start_page waited for that), whose own
            # job runs every check of the page
            assert not tab.external, f"the page tried to reach other hosts: {tab.external}"
            assert not tab.errors, f"console errors: {tab.errors}"
            return
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
        start_axe(tab)
        yield  # axe-core runs in the page while other jobs run
        violations = yield from axe_result(tab)
        assert not violations, "axe-core, light mode:\n" + "\n".join(violations)

        # a link in a dropdown title (a solution's "Exercise 1.1") navigates, without a script error
        title_link = tab.locator(".dropdown .admonition-title a")
        if title_link.count():
            href = title_link.first.get_attribute("href")
            title_link.first.scroll_into_view_if_needed()
            title_link.first.click()
            try:
                tab.wait_for_url(lambda url: url.endswith(href), timeout=5000)
            except PlaywrightTimeout:
                pytest.fail(f"the link in a solution title did not go to {href}")

        assert not tab.external, f"the page tried to reach other hosts: {tab.external}"
        assert not tab.errors, f"console errors: {tab.errors}"

        # open every solution and dropdown, and the hidden code of every plotting cell, as a reader would
        tab.evaluate("() => document.querySelectorAll('.toggle-hidden .toggle-button').forEach(b => b.click())")
        tab.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        assert not tab.locator(".dropdown.toggle-hidden, details:not([open])").count(), "a solution or hidden code did not open"
        yield  # the opened solutions lay out while other jobs run
        yield from settling(tab)
        return tab.evaluate(LAYOUT_FACTS)
    finally:
        ctx.close()


# Code blocks and outputs that scroll sideways, and how plots are shown: image pixels (natural) per
# CSS px shown, and the CSS px a letter of book_figures.MIN_POINTS measures.
LAYOUT_FACTS = """() => {
  const article = document.querySelector('.bd-article') || document.body;
  const shown = (e) => e.getBoundingClientRect().width > 0 && !e.closest('details:not([open]) > :not(summary)');
  const wide = Array.from(article.querySelectorAll('pre')).filter(p => shown(p) && p.scrollWidth > p.clientWidth + 1)
    .map(p => { const lines = p.textContent.split('\\n');
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
      return `${longest.length} columns, ${p.scrollWidth - p.clientWidth} px hidden: ${longest.trim().slice(0, 70)}`; });
  // every image of the article is a plot (an output, a figure, or a glued figure)
  const plots = Array.from(article.querySelectorAll('img')).filter(shown).map(i => ({
    src: i.getAttribute('src'), natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
    // the display width book_figures stores in the output's metadata (myst-nb writes it as style)
    width: parseFloat(i.style.width) || 0, svg: /\\.svg$/i.test(i.getAttribute('src') || '')}));
  return {wide, plots};
}"""


def plot_problems(plots, letters, need_density):
    """Plots without a display width, blurred (fewer than 1.5 image pixels per CSS px shown) or
    lettered smaller than `letters` CSS px."""
    problems = []
    smallest = book_figures.MIN_POINTS * book_figures.DPI / 72  # CSS px at display size
    for plot in plots:
        if plot["svg"]:
            continue
        if not plot["width"]:
            problems.append(f"{plot['src']}: no display width, not drawn by book_figures")
            continue
        density = plot["natural"] / plot["shown"]
        # shown / display width is the plot's scale on the page, and its letters' too
        letter = smallest * plot["shown"] / plot["width"]
        if need_density and density < 1.5:
            problems.append(f"{plot['src']}: {density:.2f} image px per CSS px, blurred on a high-DPI screen")
        if letter < letters:
            problems.append(f"{plot['src']}: shown {plot['shown']:.0f} px wide, its letters at {letter:.1f} CSS px")
    return problems


# What a phone shows: text, formulas, images and tables cut off (by the screen's edge, or by a box
# that hides what overflows it), boxes that scroll sideways without a cue, how plots are shown in
# dark mode, and the widest display equation.
PHONE_FACTS = """() => {
  const width = document.documentElement.clientWidth;
  const article = document.querySelector('.bd-article') || document.body;
  const styles = new Map();
  const style = (e) => { if (!styles.has(e)) styles.set(e, getComputedStyle(e)); return styles.get(e); };
  const scrolls = (e) => /(auto|scroll)/.test(style(e).overflowX);
  const clips = (e) => /(hidden|clip)/.test(style(e).overflowX);
  const hidden = (e) => { const s = style(e);
    return s.visibility === 'hidden' || s.display === 'none' || e.closest('dialog:not([open]), .toggle-hidden, details:not([open]) > :not(summary)'); };
  const name = (e) => (e.tagName + ': ' + (e.textContent || e.getAttribute('src') || '')).replace(/\\s+/g, ' ').slice(0, 90);
  const cut = [], seen = new Set();
  const report = (e, why) => { const what = name(e) + ' [' + why + ']'; if (!seen.has(what)) { seen.add(what); cut.push(what); } };
  article.querySelectorAll('*').forEach(e => {
    const isMath = e.tagName === 'MJX-CONTAINER';
    const hasText = Array.from(e.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!(isMath || hasText || e.tagName === 'IMG' || e.tagName === 'TABLE')) return;
    if (e.closest('mjx-container') && !isMath) return;
    const r = e.getBoundingClientRect();
    if (r.width === 0 || hidden(e)) return;
    // a formula whose own box does not scroll draws its content (mjx-math) beyond that box, or cuts it
    let left = r.left, right = r.right;
    const inner = isMath && !scrolls(e) && e.querySelector('mjx-math');
    if (inner) {
      const ir = inner.getBoundingClientRect();
      if (ir.right > r.right + 1 || ir.left < r.left - 1) {
        if (clips(e)) { report(e, 'cut by its own box'); return; }
        left = Math.min(left, ir.left); right = Math.max(right, ir.right);
      }
    }
    // the nearest box that scrolls holds it, and must fit the screen; a box that hides its
    // overflow on the way cuts what passes its edges (unless it is a 1-px visually-hidden box)
    for (let a = e.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      const ar = a.getBoundingClientRect();
      if (scrolls(a)) {
        if (ar.left < -1 || ar.right > width + 1) report(e, 'in a scrolling box wider than the screen');
        return;
      }
      if (clips(a) && ar.width > 1 && ar.height > 1 && (right > ar.right + 1 || left < ar.left - 1)) {
        report(e, 'cut by ' + a.tagName.toLowerCase() + '.' + String(a.className).split(' ')[0]); return;
      }
    }
    if (right > width + 1 || left < -1) report(e, 'cut by the edge of the screen');
  });
  const noCue = [];
  article.querySelectorAll('*').forEach(e => {
    if (scrolls(e) && e.scrollWidth > e.clientWidth + 1 && e.getBoundingClientRect().width > 0 && !hidden(e)
        && !/gradient/.test(style(e).backgroundImage)) noCue.push(name(e));
  });
  const plots = Array.from(article.querySelectorAll('.cell_output img, figure img')).map(i => ({
    src: i.getAttribute('src'), filled: i.classList.contains('plot-filled'), filter: style(i).filter}));
  const widest = Array.from(article.querySelectorAll('mjx-container[display="true"]')).map((m, index) => ({
    index, overflow: m.querySelector('mjx-math').getBoundingClientRect().width - m.clientWidth}))
    .sort((x, y) => y.overflow - x.overflow)[0] || null;
  return {cut, noCue, plots, widest, pageScroll: document.documentElement.scrollWidth - width};
}"""


def phone_job(browser, base_url, page):
    ctx, tab = start_page(browser, base_url, page, PHONE, "dark", axe=True)
    try:
        yield
        yield from loading(tab, "dark")
        # open every solution with its button, as a reader would
        tab.evaluate("() => document.querySelectorAll('.toggle-hidden .toggle-button').forEach(b => b.click())")
        tab.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        assert not tab.locator(".dropdown.toggle-hidden").count(), "a solution did not open"
        yield  # the opened solutions lay out while other jobs run
        yield from settling(tab)
        facts = tab.evaluate(PHONE_FACTS)
        layout = tab.evaluate(LAYOUT_FACTS)
        assert not facts["cut"], "cut off on a 390 px screen:\n" + "\n".join(facts["cut"][:15])
        assert facts["pageScroll"] <= 1, f"the page scrolls sideways by {facts['pageScroll']} px on a phone"
        assert not facts["noCue"], "boxes that scroll sideways with no scroll cue:\n" + "\n".join(facts["noCue"][:10])
        for plot in facts["plots"]:
            inverted = "invert" in plot["filter"]
            assert inverted != plot["filled"], (
                f"dark mode shows {plot['src']} {'inverted' if inverted else 'as drawn'} (filter {plot['filter']!r}),"
                f" {'a plot that fills areas with colour' if plot['filled'] else 'a line plot'}")
        shot(tab, page, "-390-dark")
        filled = tab.locator(".bd-article img.plot-filled")
        if filled.count():
            filled.first.scroll_into_view_if_needed()
            filled.first.screenshot(path=str(SHOTS / (page.replace("/", "__").removesuffix(".html") + "-390-dark-filled-plot.png")))
        start_axe(tab, ["color-contrast", "link-in-text-block"])
        yield
        violations = yield from axe_result(tab)
        assert not violations, "axe-core, dark mode:\n" + "\n".join(violations)
        assert not tab.errors, f"console errors: {tab.errors}"
        return {"widest": facts["widest"], "plots": layout["plots"]}
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def page_results(browser, base_url):
    """Every page checked on the desktop in light mode and on the phone in dark mode, side by side."""
    jobs = {}
    for page in PAGES:
        jobs["desktop", page] = partial(desktop_job, browser, base_url, page)
        if page in CONTENT:
            jobs["phone", page] = partial(phone_job, browser, base_url, page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return run_jobs(jobs)


@pytest.mark.parametrize("page", PAGES)
def test_desktop_light(page_results, page):
    outcome(page_results, ("desktop", page))


@pytest.mark.parametrize("page", CONTENT)
def test_phone_dark(page_results, page):
    outcome(page_results, ("phone", page))


@pytest.mark.parametrize("page", CONTENT)
def test_code_fits_the_column_at_1280(page_results, page):
    wide = outcome(page_results, ("desktop", page))["wide"]
    assert not wide, f"{len(wide)} code blocks or outputs scroll sideways at 1280 px:\n" + "\n".join(wide[:15])


@pytest.mark.parametrize("page", CONTENT)
def test_plots_sharp_and_readable(page_results, page):
    problems = plot_problems(outcome(page_results, ("desktop", page))["plots"], DESKTOP_LETTERS, True)
    problems += [f"phone: {p}" for p in plot_problems(outcome(page_results, ("phone", page))["plots"], PHONE_LETTERS, False)]
    assert not problems, "\n".join(problems[:15])


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_widest_equation_scrolls_to_its_end_on_a_phone(browser, base_url, page_results, mode):
    """The widest display equation of the book, on a phone: its box fits the screen, shows the scroll
    cue, and scrolled to the end shows the end of the formula.  Screenshots before and after."""
    widest = {page: r["widest"] for (kind, page), r in page_results.items()
              if kind == "phone" and isinstance(r, dict) and r["widest"]}
    assert widest, "no page with a display equation was checked on the phone"
    page = max(widest, key=lambda p: widest[p]["overflow"])
    assert widest[page]["overflow"] > 0, "no display equation scrolls on a phone: the check would be vacuous"
    ctx, tab = open_page(browser, base_url, page, PHONE, mode)
    try:
        formula = tab.locator('.bd-article mjx-container[display="true"]').nth(widest[page]["index"])
        formula.evaluate("m => (m.closest('div.math') || m).scrollIntoView({block: 'center'})")
        box = formula.evaluate("""m => { const r = m.getBoundingClientRect(), s = getComputedStyle(m);
            return {left: r.left, right: r.right, cue: s.backgroundImage,
                    over: m.querySelector('mjx-math').getBoundingClientRect().width - m.clientWidth,
                    number: (m.closest('div.math') && m.closest('div.math').querySelector('.eqno') || {}).textContent}; }""")
        assert box["left"] >= 0 and box["right"] <= PHONE["width"], f"the formula's box leaves the screen: {box}"
        assert box["over"] > 0 and "radial-gradient" in box["cue"], f"no scroll cue on a formula that scrolls: {box}"
        name = f"widest-equation-390-{mode}"
        tab.screenshot(path=str(SHOTS / f"{name}.png"))
        end = formula.evaluate("""m => { m.scrollLeft = m.scrollWidth;
            const inner = m.querySelector('mjx-math').getBoundingClientRect(), r = m.getBoundingClientRect();
            return {innerRight: inner.right, right: r.right, scrolled: m.scrollLeft}; }""")
        assert end["scrolled"] > 0 and end["innerRight"] <= end["right"] + 1, f"the end of the formula cannot be reached: {end}"
        tab.wait_for_timeout(100)
        tab.screenshot(path=str(SHOTS / f"{name}-scrolled.png"))
        assert not tab.errors, f"console errors: {tab.errors}"
    finally:
        ctx.close()


def becomes(locator, state, message, timeout=5000):
    """Wait until `locator` is `state` ("visible" or "hidden"); fail with `message` if it never is."""
    try:
        locator.wait_for(state=state, timeout=timeout)
    except PlaywrightTimeout:
        pytest.fail(message)


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
        becomes(sidebar, "hidden", "the sidebar button did not collapse the sidebar")
        assert not tab.locator("#pst-primary-sidebar-modal").is_visible()
        settle(tab)
        shot(tab, page, f"-{mode}-collapsed")
        tab.locator(".bd-header-article .primary-toggle").click()
        becomes(sidebar, "visible", "the sidebar button did not bring the sidebar back")
        assert not tab.errors, f"console errors: {tab.errors}"
    finally:
        ctx.close()
