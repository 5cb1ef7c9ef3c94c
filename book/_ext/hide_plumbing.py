"""Show code cells on the site without the notebook's plumbing.

The notebooks glue numbers into the prose (``from myst_nb import glue``, ``glue(...)``) and mark
cells for nbval (``# NBVAL_IGNORE_OUTPUT``). A reader of the site needs neither, so the code
shown on a page leaves out the statements that only do that; the notebook a reader downloads
keeps every line, and so do the executed outputs.

A statement is left out only when leaving it out cannot change what the remaining code means:

- ``glue(...)`` (or ``myst_nb.glue(...)``) as a statement of its own; ``x = glue(...)``, a glue
  call inside an expression, or one sharing its line with another statement (``a = 1; glue(...)``)
  stays;
- ``from myst_nb import glue`` (an import of anything else from myst_nb as well stays);
- a ``for`` loop or an ``if`` whose every statement is left out, when its header does nothing
  (no call but ``range``, ``zip``, ``.items()`` and the like) and the loop variable is not read
  after the loop in the cell;
- a function with no decorator whose body is only left-out statements (a "glue helper"), and the
  statement calls of it, provided every use of its name in the notebook is such a call;
- a comment line that only introduces left-out statements;
- a ``# NBVAL_...`` marker line.

A block is never emptied: when everything (but a docstring) in the body of a ``with``, a ``try``, an ``else`` or a
function that is kept would go, all of it stays. A cell whose source then shows nothing has its
input removed (and with it its "show code" toggle); its outputs stay. Code that Python cannot parse
(IPython magics that cannot be masked) loses only its NBVAL markers.
"""

from __future__ import annotations

import ast
import re

NBVAL = re.compile(r"^\s*#\s*NBVAL_\w*\s*$")
MAGIC = re.compile(r"^(\s*)[%!]")
# functions and methods a loop or `if` header may call and still do nothing but produce values
PURE_CALLS = frozenset({"range", "zip", "enumerate", "sorted", "reversed", "list", "tuple", "dict", "len",
                        "items", "keys", "values", "isinstance", "min", "max", "abs"})
PYTHON_LEXERS = frozenset({"python", "python3", "ipython", "ipython3", "py", "default"})


def _parse(source: str):
    """The module of `source`, IPython line magics masked as `pass`; None if it does not parse."""
    lines = source.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        return None  # a cell magic: the body need not be Python
    masked = "\n".join(MAGIC.sub(r"\1pass #", line) if MAGIC.match(line) else line for line in lines)
    try:
        return ast.parse(masked)
    except SyntaxError:
        return None


def _bodies(stmt):
    """The statement lists inside a compound statement."""
    for field in ("body", "orelse", "finalbody"):
        body = getattr(stmt, field, None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            yield body
    for handler in getattr(stmt, "handlers", []):
        yield handler.body
    for case in getattr(stmt, "cases", []):
        yield case.body


def _binds_or_waits(node) -> bool:
    return any(isinstance(n, (ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await)) for n in ast.walk(node))


def _pure(expr) -> bool:
    """True if evaluating `expr` only produces a value (no call beyond PURE_CALLS, no binding)."""
    if _binds_or_waits(expr):
        return False
    for n in ast.walk(expr):
        if isinstance(n, ast.Call):
            f = n.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name not in PURE_CALLS:
                return False
    return True


def _names(target) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


class _Cell:
    """What is plumbing in one cell's source."""

    def __init__(self, tree: ast.Module, lines: list[str], helpers: frozenset[str]):
        self.tree, self.lines, self.helpers = tree, lines, helpers
        self.glue_names, self.modules = {"glue"}, {"myst_nb"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "myst_nb":
                self.glue_names |= {a.asname or a.name for a in node.names if a.name == "glue"}
            elif isinstance(node, ast.Import):
                self.modules |= {a.asname or a.name for a in node.names if a.name == "myst_nb"}
        self.loads = [(n.lineno, n.id) for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]

    def glue_call(self, node) -> bool:
        if not isinstance(node, ast.Call) or _binds_or_waits(node):
            return False
        f = node.func
        if isinstance(f, ast.Name):
            return f.id in self.glue_names or f.id in self.helpers
        return isinstance(f, ast.Attribute) and f.attr == "glue" and isinstance(f.value, ast.Name) and f.value.id in self.modules

    def plumbing(self, stmt, helper_defs: bool = True) -> bool:
        """True if `stmt`, shown or not, makes no difference to the code around it."""
        if isinstance(stmt, ast.Expr):
            return self.glue_call(stmt.value)
        if isinstance(stmt, ast.ImportFrom):
            return stmt.module == "myst_nb" and all(a.name == "glue" for a in stmt.names)
        if isinstance(stmt, ast.For):
            read_later = {name for line, name in self.loads if line > stmt.end_lineno}
            return (not stmt.orelse and _pure(stmt.iter) and not (_names(stmt.target) & read_later)
                    and all(self.plumbing(s) for s in stmt.body))
        if isinstance(stmt, ast.If):
            return (_pure(stmt.test) and all(self.plumbing(s) for s in stmt.body)
                    and all(self.plumbing(s) for s in stmt.orelse))
        if isinstance(stmt, ast.FunctionDef) and helper_defs:
            return stmt.name in self.helpers
        return False

    def owns_lines(self, stmt) -> bool:
        """True if no other code shares the lines of `stmt` (a trailing comment may)."""
        first = self.lines[stmt.lineno - 1].encode()
        last = self.lines[stmt.end_lineno - 1].encode()
        return not first[: stmt.col_offset].strip() and last[stmt.end_col_offset :].strip()[:1] in (b"", b"#")

    def removable(self, body) -> list:
        """Statements of `body` (recursively) to leave out; never all of a body."""
        out, kept = [], False
        for stmt in body:
            if self.plumbing(stmt) and self.owns_lines(stmt):
                out.append(stmt)
            else:
                kept = kept or not _docstring(stmt)
                for inner in _bodies(stmt):
                    out += self.removable(inner)
        if not kept:
            return []
        return out


def _docstring(stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _is_helper(stmt: ast.FunctionDef, cell: _Cell) -> bool:
    body = stmt.body[1:] if stmt.body and _docstring(stmt.body[0]) else stmt.body
    return not stmt.decorator_list and bool(body) and all(cell.plumbing(s, helper_defs=False) for s in body)


def find_helpers(sources: list[str]) -> frozenset[str]:
    """Names of the notebook's glue helpers: functions whose body only glues, used only as statements."""
    trees = [t for t in map(_parse, sources) if t is not None]
    helpers: set[str] = set()
    for tree in trees:
        cell = _Cell(tree, [], frozenset())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and _is_helper(node, cell):
                helpers.add(node.name)
    if not helpers:
        return frozenset()
    # a name also defined otherwise, or used other than as `helper(...)` on its own, is no helper
    for tree in trees:
        statement_calls = {id(s.value.func) for s in ast.walk(tree)
                           if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)}
        cell = _Cell(tree, [], frozenset())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in helpers:
                if isinstance(node.ctx, ast.Load) and id(node) in statement_calls:
                    continue
                helpers.discard(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in helpers:
                if not (isinstance(node, ast.FunctionDef) and _is_helper(node, cell)):
                    helpers.discard(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                helpers -= {(a.asname or a.name).split(".")[0] for a in node.names}
    return frozenset(helpers)


def strip_plumbing(source: str, helpers: frozenset[str] = frozenset()) -> str:
    """`source` as the site shows it: without the plumbing described in the module docstring."""
    lines = source.split("\n")
    removed = {i for i, line in enumerate(lines) if NBVAL.match(line)}
    tree = _parse(source)
    if tree is not None:
        cell = _Cell(tree, lines, helpers)
        for stmt in cell.removable(tree.body) if tree.body else []:
            removed.update(range(stmt.lineno - 1, stmt.end_lineno))
        if tree.body and all(cell.plumbing(s) and cell.owns_lines(s) for s in tree.body):
            # the whole cell is plumbing: removable() keeps a body whole, but a cell may go
            for stmt in tree.body:
                removed.update(range(stmt.lineno - 1, stmt.end_lineno))
    if not removed:
        return source
    removed |= _introducing_comments(lines, removed)
    return _join(lines, removed)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _introducing_comments(lines: list[str], removed: set[int]) -> set[int]:
    """Comment lines directly above a run of removed lines that ends its block: they introduce it."""
    out = set()
    i = 0
    while i < len(lines):
        if i not in removed or (i - 1 in removed):
            i += 1
            continue
        end = i
        while end + 1 in removed:
            end += 1
        after = end + 1
        ends_block = (after >= len(lines) or not lines[after].strip()
                      or _indent(lines[after]) < _indent(lines[i]))
        j = i - 1
        above = []
        while j >= 0 and lines[j].lstrip().startswith("#") and _indent(lines[j]) == _indent(lines[i]):
            above.append(j)
            j -= 1
        if ends_block and above:
            out.update(above)
        i = end + 1
    return out


def _join(lines: list[str], removed: set[int]) -> str:
    """The kept lines; where lines were removed, the blank lines on either side are not doubled."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i not in removed:
            out.append(lines[i])
            i += 1
            continue
        while i in removed:
            i += 1
        before = 0
        while before < len(out) and not out[len(out) - 1 - before].strip():
            before += 1
        after = 0
        while i + after < len(lines) and i + after not in removed and not lines[i + after].strip():
            after += 1
        # keep the larger of the two blank runs, and none at the start of the cell
        drop = min(before, after) if before < len(out) else after
        i += drop
    while out and not out[-1].strip():
        out.pop()
    while out and not out[0].strip():
        out.pop(0)
    return "\n".join(out)


# ---- Sphinx --------------------------------------------------------------------------------------

from docutils import nodes  # noqa: E402
from sphinx.transforms.post_transforms import SphinxPostTransform  # noqa: E402


def _source_block(cell):
    for child in cell.children:
        if child.get("nb_element") == "cell_code_source":
            blocks = list(child.findall(nodes.literal_block))
            return child, (blocks[0] if blocks else None)
    return None, None


class HidePlumbing(SphinxPostTransform):
    """Strip the plumbing from every code cell's displayed source (before myst-nb wraps hidden inputs)."""

    default_priority = 150  # myst-nb's HideInputCells runs at 199 and must see the cells without it

    def run(self, **kwargs):
        cells = [n for n in self.document.findall(nodes.container) if n.get("nb_element") == "cell_code"]
        shown = []
        for cell in cells:
            container, block = _source_block(cell)
            if block is not None and str(block.get("language", "python")).lower() in PYTHON_LEXERS:
                shown.append((cell, container, block))
        helpers = find_helpers([block.astext() for _, _, block in shown])
        for cell, container, block in shown:
            text = block.astext()
            new = strip_plumbing(text, helpers)
            if new == text:
                continue
            if new.strip():
                block.children = [nodes.Text(new)]
                block.rawsource = new
                continue
            cell.remove(container)
            if not cell.children:
                cell.parent.remove(cell)


def setup(app):
    app.add_post_transform(HidePlumbing)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
