"""The Chinese edition of chapter 5 prints the numbers of chapter 5's own computation.

Both notebooks import book/source_example.py; nbval re-runs each against its stored outputs.
These tests tie the two stored notebooks together: a value glued under the same name on both
pages must be the same, so neither page can be re-executed against a changed example alone.
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "05_source_document.ipynb"
CHINESE = ROOT / "book" / "source_document_zh.ipynb"
GLUE_MIME = "application/papermill.record/text/plain"


def notebook(path):
    return json.loads(path.read_text(encoding="utf-8"))


def glued(path):
    values = {}
    for cell in notebook(path)["cells"]:
        for output in cell.get("outputs", []):
            if GLUE_MIME in output.get("data", {}):
                values[output["metadata"]["scrapbook"]["name"]] = output["data"][GLUE_MIME]
    return values


def markdown(path):
    return "\n".join("".join(c["source"]) for c in notebook(path)["cells"] if c["cell_type"] == "markdown")


def test_shared_values_are_identical():
    chapter, chinese = glued(CHAPTER), glued(CHINESE)
    shared = sorted(set(chapter) & set(chinese))
    # the worked example, the step bound, D2, D4, D6, D8, D9, D10 and the drop-in run
    for key in ("doc_W100", "doc_loss100", "doc_reach_bound", "doc_epochs_needed", "d2_ratio_W",
                "d4_literal_step", "d6_literal_step", "d9_actual", "d10_doc_default", "best_worst_Graves",
                "graves_W100"):
        assert key in shared, f"{key} is not glued on both pages"
    differing = {key: (chapter[key], chinese[key]) for key in shared if chapter[key] != chinese[key]}
    assert not differing, f"chapter 5 and its Chinese edition disagree: {differing}"


def test_every_number_in_the_chinese_prose_is_glued_on_its_page():
    keys = set(re.findall(r"\{glue:text\}`([^`:]+)", markdown(CHINESE)))
    assert keys, "the page glues no value"
    missing = keys - set(glued(CHINESE))
    assert not missing, f"glued in the text but computed by no cell of the page: {sorted(missing)}"


def test_both_pages_run_the_shared_example():
    for path in (CHAPTER, CHINESE):
        code = "\n".join("".join(c["source"]) for c in notebook(path)["cells"] if c["cell_type"] == "code")
        assert "from source_example import" in code, f"{path.name} does not import the shared example"
        assert "class DocumentRMSprop:" not in code and "def train(" not in code, (
            f"{path.name} defines the example itself instead of importing it")


def test_the_chinese_page_is_marked_as_chinese_and_linked():
    assert notebook(CHINESE)["metadata"].get("lang") == "zh-Hans"
    assert "{doc}`source_document_zh`" in markdown(CHAPTER), "chapter 5 does not link to its Chinese edition"
    assert "{doc}`source_document_zh`" in (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    assert "source_document_zh" in (ROOT / "README.md").read_text(encoding="utf-8")
    text = markdown(CHINESE)
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    assert cjk > 2000, f"the Chinese edition holds only {cjk} Chinese characters"


def test_chinese_prose_is_not_broken_between_two_chinese_characters():
    # a browser renders a line break as a space, which shows between Chinese characters
    def cjk(ch):
        return "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"

    breaks = []
    for cell in notebook(CHINESE)["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        lines = "".join(cell["source"]).split("\n")
        breaks += [(a.strip()[-8:], b.strip()[:8]) for a, b in zip(lines, lines[1:])
                   if a.strip() and b.strip() and cjk(a.rstrip()[-1]) and cjk(b.strip()[0])]
    assert not breaks, f"line breaks inside Chinese text: {breaks[:5]}"
