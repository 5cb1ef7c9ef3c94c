"""Open every page of the built site in headless Chromium and check what a reader sees.

Uses Debian's /usr/bin/chromium through Playwright; no browser is downloaded.  The site is served
over a localhost HTTP server.  Screenshots go to _build/screenshots/.
"""

import functools
import http.server
import os
import re
import shutil
import threading

import pytest

from conftest import HTML, ROOT, pages

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "_build" / "screenshots"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing; .ci/run installs it with apt-get", pytrace=False)
    pytest.skip("no /usr/bin/chromium: install Debian's chromium to run the browser check", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def base_url(html_root):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html_root))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
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


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(browser, base_url, page):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = ctx.new_page()
    errors = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    external = []
    tab.route("**/*", lambda route: (external.append(route.request.url), route.abort())
              if not route.request.url.startswith(base_url) and not route.request.url.startswith("data:")
              else route.continue_())
    redirect = REFRESH.search((HTML / page).read_text(errors="replace"))
    if redirect:
        # a redirect stub (the site's index.html): the page must land on its target,
        # and the checks below run there, after the second navigation has finished
        with tab.expect_navigation(url=f"{base_url}/{redirect.group(1)}", wait_until="load"):
            tab.goto(f"{base_url}/{page}", wait_until="commit")
    else:
        tab.goto(f"{base_url}/{page}", wait_until="load")

    has_math = tab.locator(".math").count() > 0
    if has_math:
        tab.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
        tab.evaluate("() => MathJax.startup.promise")
        assert tab.locator("mjx-container").count() > 0, "math present but MathJax rendered nothing"
        body = tab.locator("article").inner_text() if tab.locator("article").count() else tab.inner_text("body")
        assert "$$" not in body and "\\(" not in body and "\\[" not in body, "raw TeX left on the page"

    broken = tab.evaluate(
        "() => Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)"
    )
    assert not broken, f"images that did not load: {broken}"
    pending = tab.evaluate("() => Array.from(document.images).filter(i => !i.complete).map(i => i.src)")
    for src in pending:  # lazily loaded: scroll them in, then check
        tab.locator(f'img[src="{src}"]').first.scroll_into_view_if_needed()
    if pending:
        tab.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=20000)
        assert not tab.evaluate("() => Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.src)")

    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / (page.replace("/", "__").removesuffix(".html") + ".png")), full_page=False)
    ctx.close()
    assert not external, f"the page tried to reach other hosts: {external}"
    assert not errors, f"console errors: {errors}"
