"""Show the package's own source in the book, so the text cannot drift from the
code."""

from __future__ import annotations

import inspect


def show_source(*objects):
    """The source of ``objects`` as one Markdown code block (an IPython display
    object).

    A chapter calls this in a code cell; the cell's stored output is then the
    package's source as it was when the notebook ran, and nbval fails when the
    package changes without the notebook being re-executed.
    """
    from IPython.display import Markdown

    blocks = "\n\n".join(inspect.getsource(obj).rstrip() for obj in objects)
    return Markdown(f"```python\n{blocks}\n```")
