"""Every chapter notebook is in _toc.yml, and every _toc.yml entry has a file."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_entries():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            entries.append(chapter["file"])
            entries.extend(section["file"] for section in chapter.get("sections", []))
    return entries


def resolve(entry):
    matches = [ROOT / f"{entry}{suffix}" for suffix in (".ipynb", ".md") if (ROOT / f"{entry}{suffix}").exists()]
    return matches


def test_toc_is_a_numbered_jb_book():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"
    assert toc["parts"], "the book is organised in parts"
    for part in toc["parts"]:
        # chapters (book/NN_topic) sit in numbered parts; a translation of a chapter's core has no
        # number of its own and sits in an unnumbered part, so that it shifts no chapter's number
        numbered_names = [Path(c["file"]).name[:2].isdigit() for c in part["chapters"]]
        if all(numbered_names):
            assert part.get("numbered"), f"part {part['caption']!r} must number its chapters"
        else:
            assert not any(numbered_names), f"part {part['caption']!r} mixes chapters and other pages"
            assert not part.get("numbered"), f"part {part['caption']!r} holds no chapter: it must not be numbered"


def test_every_toc_entry_has_exactly_one_file():
    for entry in toc_entries():
        assert len(resolve(entry)) == 1, f"_toc.yml entry {entry!r} needs exactly one .ipynb or .md file"


def test_every_notebook_is_in_the_toc():
    listed = {Path(e).with_suffix("").as_posix() for e in toc_entries()}
    for nb in sorted((ROOT / "book").glob("**/*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        stem = nb.relative_to(ROOT).with_suffix("").as_posix()
        assert stem in listed, f"{stem}.ipynb is not listed in _toc.yml"


def test_chapters_are_numbered_in_toc_order():
    chapters = [e for e in toc_entries() if Path(e).name[:2].isdigit()]
    numbers = [int(Path(e).name[:2]) for e in chapters]
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_performance_is_the_last_chapter():
    chapters = [e for e in toc_entries() if Path(e).name[:2].isdigit()]
    if any("performance" in c for c in chapters):
        assert "performance" in chapters[-1]


def test_only_course_pages_follow_the_chapters():
    # Pages after the last numbered chapter are the course material (cheat sheet, guides),
    # named course_*, in one part of their own.
    entries = toc_entries()
    last = max(i for i, e in enumerate(entries) if Path(e).name[:2].isdigit())
    assert all(Path(e).name.startswith("course_") for e in entries[last + 1 :]), entries[last + 1 :]
