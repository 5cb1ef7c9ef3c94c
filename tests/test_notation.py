"""One notation: every symbol in a chapter's math is in the notation table of book/intro.md, listed
for that chapter, and Graves' Hebrew letters appear only where his notation is quoted.

A symbol is a Latin letter, a Greek letter (a LaTeX command such as ``\\rho`` or a Unicode letter
such as ρ, which count as the same symbol), ``\\nabla``, ``\\ell`` or a blackboard letter
(``\\mathbb{E}``), read from the markdown cells' math: ``$...$``, ``$$...$$``, ``{math}`` roles
and ``{math}`` blocks. Text inside ``\\text{}``, ``\\mathrm{}`` and ``\\operatorname{}`` is a
name, not a symbol. Accents, primes and subscripts do not make a new symbol: ``\\hat n``, ``n'``
and ``n_t`` all count as ``n``.

Graves' letters are allowed in a notebook cell tagged ``graves-notation`` (a verbatim quotation
of his equations) and, in book/intro.md, inside the admonition with ``:class: graves-notation``
(the translation box). CONTRIBUTING.md describes both markers.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
INTRO = BOOK / "intro.md"
MARKER = "graves-notation"

# Graves' letters ℵ ℶ ℷ ℸ (U+2135..U+2138) and their LaTeX commands
HEBREW = re.compile("[\u2135-\u2138]|\\\\(?:aleph|beth|gimel|daleth)(?![A-Za-z])")

GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "varepsilon", "ϵ": "epsilon",
    "ζ": "zeta", "η": "eta", "θ": "theta", "ϑ": "vartheta", "ι": "iota", "κ": "kappa",
    "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi", "π": "pi", "ρ": "rho", "σ": "sigma",
    "τ": "tau", "υ": "upsilon", "φ": "varphi", "ϕ": "phi", "χ": "chi", "ψ": "psi", "ω": "omega",
    "Γ": "Gamma", "Δ": "Delta", "Θ": "Theta", "Λ": "Lambda", "Ξ": "Xi", "Π": "Pi", "Σ": "Sigma",
    "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega",
    "\u2135": "aleph", "\u2136": "beth", "\u2137": "gimel", "\u2138": "daleth",
}
SYMBOL_COMMANDS = set(GREEK.values()) | {"Upsilon", "varsigma", "varpi", "varrho", "nabla", "ell"}
# Commands whose braced argument is a name or markup, not symbols
TEXT_COMMANDS = ("text", "mathrm", "operatorname", "textrm", "texttt", "textbf", "textit", "mbox",
                 "label", "tag", "begin", "end", "mathsf")


def math_segments(markdown):
    """The math of one markdown text, as a list of LaTeX strings."""
    out = []

    def take(pattern, text, group=1, flags=0):
        def keep(m):
            out.append(m.group(group))
            return " "
        return re.sub(pattern, keep, text, flags=flags)

    text = take(r"```\{math\}[^\n]*\n(.*?)```", markdown, flags=re.S)
    text = take(r"\{math\}`([^`]*)`", text)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)  # code blocks
    text = re.sub(r"`[^`\n]*`", " ", text)  # inline code, role arguments (glue, doc, ref, eq)
    text = take(r"\$\$(.*?)\$\$", text, flags=re.S)
    take(r"(?<![\\$])\$((?:[^$\n]|\n(?!\n))+?)\$", text)  # inline math may wrap a line
    return out


def symbols(latex):
    """The set of symbols in one piece of LaTeX."""
    found = set()
    s = latex
    for m in re.finditer(r"\\mathbb\s*\{\s*([A-Za-z])\s*\}", s):
        found.add(f"\\mathbb{{{m.group(1)}}}")
    s = re.sub(r"\\mathbb\s*\{[^}]*\}", " ", s)
    for command in TEXT_COMMANDS:
        s = re.sub(r"\\" + command + r"\*?\s*\{[^{}]*\}", " ", s)
    for m in re.finditer(r"\\([A-Za-z]+)", s):
        if m.group(1) in SYMBOL_COMMANDS:
            found.add("\\" + m.group(1))
    s = re.sub(r"\\[A-Za-z]+", " ", s)
    for ch in s:
        if ch in GREEK:
            found.add("\\" + GREEK[ch])
        elif "a" <= ch.lower() <= "z":
            found.add(ch)
    return found


def chapter_label(path):
    """How the table's Chapters column names a page: its number, 'zh' or 'course'."""
    stem = path.stem
    if stem[:2].isdigit():
        return str(int(stem[:2]))
    if stem == "source_document_zh":
        return "zh"
    if stem.startswith("course_"):
        return "course"
    raise AssertionError(f"{path.name}: no label for the notation table's Chapters column")


def chapters():
    return sorted(BOOK.glob("*.ipynb"))


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def chapter_symbols(path):
    found = set()
    for cell in cells(path):
        if cell["cell_type"] == "markdown" and MARKER not in cell["metadata"].get("tags", []):
            for segment in math_segments("".join(cell["source"])):
                found |= symbols(segment)
    return found


def notation_rows(intro_text):
    """(symbols, chapter labels) for every row of the notation section's tables with a Chapters column."""
    section = intro_text.split("## Notation", 1)[1].split("\n## ", 1)[0]
    rows, header = [], None
    for line in section.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cols
            continue
        if set(line) <= set("|-: "):
            continue
        if "Chapters" not in header:
            continue
        first = cols[0]
        labels = {c.strip() for c in cols[header.index("Chapters")].split(",") if c.strip()}
        found = set()
        for segment in math_segments(first):
            found |= symbols(segment)
        rows.append((found, labels))
    return rows


def table():
    return notation_rows(INTRO.read_text(encoding="utf-8"))


def missing(path, rows):
    label = chapter_label(path)
    return sorted(sym for sym in chapter_symbols(path)
                  if not any(sym in syms and label in labels for syms, labels in rows))


def test_the_extraction_reads_math_and_skips_names():
    text = ("Prose $w_t - \\eta\\nabla_t$ and ρ, `code $x$`, {glue:text}`q:.3f`, {math}`\\mu`,\n"
            "$$\nn \\leftarrow \\rho n + \\text{spread}\\,\\mathbb{E}[g] + \\operatorname{Var} \\ell\n$$ (lbl)\n"
            "```{math}\n\\hat a_t = ε\n```\n")
    found = set().union(*map(symbols, math_segments(text)))
    assert found == {"w", "t", "\\eta", "\\nabla", "\\mu", "n", "\\rho", "\\mathbb{E}", "g", "\\ell",
                     "a", "\\varepsilon"}
    assert symbols("\\aleph + ℷ") == {"\\aleph", "\\gimel"}


def test_the_table_lists_the_main_quantities():
    rows = table()
    listed = set().union(*(syms for syms, _ in rows))
    assert {"w", "\\nabla", "n", "g", "\\Delta", "\\rho", "\\mu", "\\eta", "\\varepsilon"} <= listed
    assert not listed & {"\\aleph", "\\beth", "\\gimel", "\\daleth"}


def test_a_symbol_missing_from_the_table_is_found(tmp_path):
    """Control: the check fails on a symbol that no row lists for the chapter."""
    rows = table()
    nb = tmp_path / "04_graves.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {},
                                         "source": ["A planted $\\Upsilon$ and $\\eta$."]}]}))
    assert missing(nb, rows) == ["\\Upsilon"]


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.name)
def test_every_symbol_is_in_the_notation_table(path):
    gaps = missing(path, table())
    assert not gaps, (f"{path.name} uses {gaps} in its math, but no row of the notation table in "
                      f"book/intro.md lists them with '{chapter_label(path)}' in its Chapters column")


def hebrew_outside_quotations(path):
    bad = []
    for i, cell in enumerate(cells(path)):
        allowed = cell["cell_type"] == "markdown" and MARKER in cell["metadata"].get("tags", [])
        texts = ["".join(cell["source"]), json.dumps(cell["metadata"], ensure_ascii=False)]
        for output in cell.get("outputs", []):
            texts.append(json.dumps(output, ensure_ascii=False))
        if not allowed and any(HEBREW.search(t) for t in texts):
            bad.append(i)
    return bad


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.name)
def test_graves_letters_only_in_quotations(path):
    bad = hebrew_outside_quotations(path)
    assert not bad, (f"{path.name}: cells {bad} write Graves' Hebrew letters; the book writes ρ, μ, η, ε "
                     f"(only a cell tagged '{MARKER}' quotes his notation)")


def test_graves_letters_in_intro_only_in_the_translation_box():
    text = INTRO.read_text(encoding="utf-8")
    boxes = [m.group(0) for m in
             re.finditer(r"(`{3,}|:{3,})\{admonition\}[^\n]*\n:class: " + MARKER + r"\n.*?\n\1", text, re.S)]
    assert len(boxes) == 1, "book/intro.md needs one admonition with ':class: graves-notation'"
    assert HEBREW.search(boxes[0]), "the translation box maps Graves' letters"
    rest = text.replace(boxes[0], "")
    assert not HEBREW.search(rest), f"Graves' letters outside the translation box: {HEBREW.findall(rest)}"


def text_files():
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "README.md"]
    for pattern in ("graves/*.py", "book/*.py", "book/_static/explorables/*.js", "benchmarks/*.py",
                    "tests/*.py", "tests/site/*.py"):
        files += sorted(ROOT.glob(pattern))
    return [f for f in files if f.exists() and f != Path(__file__).resolve()]  # this file names the letters


@pytest.mark.parametrize("path", text_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_graves_letters_in_code_and_docs(path):
    found = HEBREW.findall(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)} writes Graves' letters {found}; use ρ, μ, η, ε"
