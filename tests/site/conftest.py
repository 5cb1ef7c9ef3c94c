import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def html_root():
    if not (HTML / "index.html").exists():
        pytest.fail("_build/html is missing: these tests run after the build (`make test` does both)")
    return HTML


def pages():
    return sorted(p for p in HTML.glob("**/*.html") if "_static" not in p.parts and "_sources" not in p.parts)


def require_chromium():
    """Playwright's sync API, or skip the calling test module when Debian's Chromium is missing (fail under CI)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing; .ci/run installs it with apt-get", pytrace=False)
        pytest.skip("no /usr/bin/chromium: install Debian's chromium to run the browser check", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="session")
def base_url(html_root):
    """The built site over a localhost HTTP server, for the whole session."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html_root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (Debian's, driven by Playwright) for every browser test of the session."""
    sync_api = require_chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield b
        b.close()
