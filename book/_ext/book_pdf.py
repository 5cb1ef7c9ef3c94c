"""Print the whole book to one PDF: `make pdf` (after the single-page build into _build/singlehtml).

Debian's /usr/bin/chromium renders the single-page HTML build through Playwright, with the site's
print stylesheet: light colours, wrapped code and tables, solutions open.  Before printing, the
script puts a table of contents after the title and the bibliography at the end, and waits until
MathJax has typeset every equation and every figure has loaded.  Chromium's PDF outline gives
bookmarks for every chapter and section.

Usage: python book/_ext/book_pdf.py [SINGLEHTML_DIR] [OUTPUT_PDF]
"""

import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PREPARE = r"""
() => {
  const article = document.querySelector("article.bd-article") || document.querySelector("main");
  // The bibliography is the front page's last section: in print it ends the book.
  const refs = document.getElementById("references");
  if (refs) article.appendChild(refs);

  // sphinx-book-theme prints the title and a table of contents of every part and chapter
  // first; the bibliography, now last, joins it.
  const toc = document.querySelector("#jb-print-toc nav");
  if (!toc) return 0;
  if (refs) {
    const p = document.createElement("p");
    p.className = "caption";
    p.innerHTML = '<a class="reference internal" href="#references">References</a>';
    toc.appendChild(p);
  }
  // Images load lazily on screen; in print every one is needed.
  document.querySelectorAll("img").forEach((img) => { img.loading = "eager"; });
  document.documentElement.dataset.theme = "light";
  document.documentElement.dataset.mode = "light";
  return toc.querySelectorAll("a").length;
}
"""

PDF_CSS = """
#jb-print-docs-body { break-after: page; }
#jb-print-toc a { text-decoration: none; color: #111; }
#jb-print-toc p.caption { font-weight: 700; margin: 0.9em 0 0.2em 0; }
/* every chapter starts on a new page */
span[id^="document-book/"] + section,
#references { break-before: page; }
"""


def build_pdf(single: Path, out: Path) -> int:
    # Sphinx's single-page builder writes the page to book/intro.html but links its assets as if
    # it stood at the top of the build: serve a copy from there.
    page_file = single / "book.html"
    page_file.write_bytes((single / "book" / "intro.html").read_bytes())
    missing = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_error(self, code, *args, **kwargs):
            missing.append(f"{code} {self.path}")
            super().send_error(code, *args, **kwargs)

    handler = functools.partial(Quiet, directory=str(single))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            ctx = browser.new_context(viewport={"width": 1100, "height": 1400}, color_scheme="light")
            ctx.add_init_script("localStorage.setItem('mode','light');localStorage.setItem('theme','light')")
            page = ctx.new_page()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
            page.goto(f"{base}/book.html", wait_until="load", timeout=120_000)
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=120_000)
            page.evaluate("() => MathJax.startup.promise")
            entries = page.evaluate(PREPARE)
            if not entries:
                raise SystemExit("no table of contents in the single-page build")
            page.add_style_tag(content=PDF_CSS)
            page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=120_000)
            page.emulate_media(media="print")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.pdf(
                path=str(out),
                format="A4",
                margin={"top": "18mm", "bottom": "18mm", "left": "16mm", "right": "16mm"},
                print_background=True,
                display_header_footer=True,
                header_template="<span></span>",
                footer_template=(
                    '<div style="font-size:8px;width:100%;text-align:center;color:#555">'
                    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
                ),
                outline=True,
                tagged=True,
            )
            browser.close()
        missing = [m for m in missing if not m.endswith("/searchindex.js")]  # search: not in print
        if missing:
            raise SystemExit(f"the single-page build misses files: {missing[:5]}")
    finally:
        server.shutdown()
    return entries


def main(argv):
    single = Path(argv[1]) if len(argv) > 1 else ROOT / "_build" / "singlehtml"
    out = Path(argv[2]) if len(argv) > 2 else ROOT / "_build" / "pdf" / "book.pdf"
    if not (single / "book" / "intro.html").exists():
        sys.exit(f"{single}/book/intro.html is missing: build it first (make pdf does)")
    if not os.path.exists(CHROMIUM):
        sys.exit("no Chromium: install Debian's chromium (apt-get install chromium)")
    entries = build_pdf(single, out)
    print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: "
          f"{entries} contents entries, {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv)
