from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"


@pytest.fixture(scope="session")
def html_root():
    if not (HTML / "index.html").exists():
        pytest.fail("_build/html is missing: these tests run after the build (`make test` does both)")
    return HTML


def pages():
    return sorted(p for p in HTML.glob("**/*.html") if "_static" not in p.parts and "_sources" not in p.parts)
