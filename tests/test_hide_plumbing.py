"""The site shows code cells without glue calls and NBVAL markers (book/_ext/hide_plumbing.py),
and never in a way that changes what the code it keeps means."""

import ast
import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from hide_plumbing import find_helpers, strip_plumbing  # noqa: E402


def strip(code, helpers=frozenset()):
    return strip_plumbing(textwrap.dedent(code).strip("\n"), helpers)


def same(code):
    code = textwrap.dedent(code).strip("\n")
    assert strip_plumbing(code) == code


def test_statements_and_the_import_go_the_rest_stays():
    assert strip("""
        import numpy as np
        from myst_nb import glue

        x = np.sqrt(2.0)
        glue("x", x, display=False)
        print(f"{x:.6f}")
        glue("y", 2 * x, display=False)  # twice x
    """) == 'import numpy as np\n\nx = np.sqrt(2.0)\nprint(f"{x:.6f}")'


def test_a_call_over_several_lines_goes_whole():
    assert strip("""
        a = 1
        glue(
            "a",
            a,
            display=False,
        )
        b = 2
        myst_nb.glue("b",
                     b, display=False)
    """) == "a = 1\nb = 2"


@pytest.mark.parametrize("code", [
    'x = glue("a", 1, display=False)',                        # the value of the call is used
    'a = 1; glue("a", a, display=False)',                     # another statement shares the line
    'glue("a", 1, display=False); a = 1',
    'values = [glue(k, v) for k, v in d.items()]',             # inside an expression
    'from myst_nb import glue, glue_math\nglue_math("m")',     # imports more than glue
    'glue("a", (a := 2))\nprint(a)',                           # the call binds a name
])
def test_kept_when_leaving_it_out_would_change_the_code(code):
    same(code)


def test_kept_line_magic_does_not_stop_the_rest():
    assert strip("""
        %matplotlib inline
        glue("a", 1, display=False)
        a = 1
    """) == "%matplotlib inline\na = 1"


def test_unparsable_or_cell_magic_loses_only_the_marker():
    assert strip("""
        %%time
        # NBVAL_IGNORE_OUTPUT
        glue("a", 1)
    """) == '%%time\nglue("a", 1)'
    assert strip("""
        # NBVAL_IGNORE_OUTPUT
        x = !ls
        glue("a", 1)
    """) == 'x = !ls\nglue("a", 1)'


def test_markers_go_and_a_cell_of_plumbing_becomes_empty():
    assert strip("""
        # NBVAL_IGNORE_OUTPUT
        from myst_nb import glue
        #NBVAL_SKIP
        glue("a", 1, display=False)

        glue("b", 2, display=False)
    """) == ""
    # a comment that mentions NBVAL but is no marker stays
    same("# why not NBVAL_IGNORE_OUTPUT here: the output is exact\nx = 1")


def test_a_loop_of_glue_calls_goes_whole():
    assert strip("""
        for k, v in results.items():
            glue(f"r_{k}", v, display=False)
            glue(f"s_{k}", 2 * v, display=False)
        print("done")
    """) == 'print("done")'
    assert strip("""
        for tag, r in (("64", f64), ("32", f32)):
            if r is not None:
                glue(f"t_{tag}", r, display=False)
        y = 1
    """) == "y = 1"


def test_a_loop_body_is_never_emptied():
    # the loop also prints: only the glue calls go
    assert strip("""
        for k in keys:
            print(k)
            glue(k, 1, display=False)
    """) == "for k in keys:\n    print(k)"
    # the loop's header calls something that may act: the loop stays, with its body
    same("""
        for run in train(opt):
            glue("r", run, display=False)
    """)
    # the loop variable is read after the loop
    same("""
        for k in keys:
            glue(k, 1, display=False)
        print(k)
    """)
    # a loop with an else clause
    same("""
        for k in keys:
            glue(k, 1, display=False)
        else:
            pass
    """)
    # a with block, an else branch, a try: never emptied
    same("""
        with np.errstate(all="ignore"):
            glue("a", a, display=False)
    """)
    same("""
        if ok:
            x = 1
        else:
            glue("a", a, display=False)
    """)
    same("""
        try:
            glue("a", f(), display=False)
        except ValueError:
            pass
    """)
    # ... though the glue calls among other statements in them go
    assert strip("""
        with np.errstate(all="ignore"):
            a = f()
            glue("a", a, display=False)
        print(a)
    """) == 'with np.errstate(all="ignore"):\n    a = f()\nprint(a)'


def test_an_if_of_glue_calls_goes_only_with_a_plain_test():
    assert strip("""
        if len(xs) > 2:
            glue("x", xs[2], display=False)
        z = 0
    """) == "z = 0"
    same("""
        if check(xs):
            glue("x", xs[2], display=False)
        z = 0
    """)


def test_a_comment_that_only_introduces_glue_calls_goes():
    assert strip("""
        print(peak)
        # tracemalloc's bookkeeping varies: glue whole arrays
        glue("arrays", round(peak), display=False)
        glue("gb", peak / 1e9, display=False)
    """) == "print(peak)"
    # a comment above code that stays, stays
    assert strip("""
        # the peak, in arrays
        arrays = round(peak)
        glue("arrays", arrays, display=False)
    """) == "# the peak, in arrays\narrays = round(peak)"
    # a comment above glue calls followed by more code in the same paragraph stays
    assert strip("""
        # report
        glue("a", a, display=False)
        print(a)
    """) == "# report\nprint(a)"


def test_blank_lines_are_not_doubled():
    assert strip("""
        a = 1


        glue("a", a, display=False)


        def f():
            return a
    """) == "a = 1\n\n\ndef f():\n    return a"
    assert strip("""
        glue("a", a, display=False)

        b = 2
    """) == "b = 2"


GLUE_HELPER = '''
def glue_best(prefix, results):
    """Glue each optimizer's best learning rate."""
    for name, r in results.items():
        glue(f"{prefix}_{name}_lr", r["lr"], display=False)
'''


def test_a_glue_helper_and_its_calls_go():
    first = "def train():\n    return 1\n\n\n" + GLUE_HELPER.strip()
    later = "reg = train()\nglue_best(\"reg\", reg)\nprint(reg)"
    helpers = find_helpers([first, later])
    assert helpers == {"glue_best"}
    assert strip_plumbing(first, helpers) == "def train():\n    return 1"
    assert strip_plumbing(later, helpers) == "reg = train()\nprint(reg)"
    # without knowing the helper nothing of it goes: a function body is never emptied
    assert strip_plumbing(first) == first
    assert strip_plumbing(later) == later


@pytest.mark.parametrize("use", [
    "f = glue_best",                    # used as a value
    "x = glue_best('a', r)",            # its result is used
    "def glue_best(p, r):\n    return 1",  # defined otherwise elsewhere
    "from helpers import glue_best",
])
def test_a_helper_used_otherwise_is_no_helper(use):
    assert find_helpers([GLUE_HELPER, use]) == frozenset()


def test_decorated_function_is_no_helper():
    assert find_helpers(["@cache\n" + GLUE_HELPER.strip()]) == frozenset()


def notebook_cells():
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        yield nb.name, ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


@pytest.mark.parametrize("name, sources", list(notebook_cells()))
def test_every_shown_cell_of_the_book_is_its_source_less_lines(name, sources):
    """What the site shows of each cell is valid Python made of the cell's own lines, in order,
    without glue calls or NBVAL markers."""
    helpers = find_helpers(sources)
    for source in sources:
        shown = strip_plumbing(source, helpers)
        lines = iter(source.split("\n"))
        assert all(any(line == s for s in lines) for line in shown.split("\n")), (
            f"{name}: the shown code is not the cell's lines in order:\n{shown}")
        try:
            ast.parse(source)
        except SyntaxError:
            continue
        ast.parse(shown)  # raises if leaving lines out broke the code
        assert "NBVAL_" not in shown and "glue(" not in shown, f"{name}: plumbing left in\n{shown}"
