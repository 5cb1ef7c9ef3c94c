"""Mark the content of a page written in another language than the book's, for screen readers.

A page declares its language in its metadata (for a notebook, ``"lang": "zh-Hans"`` in the
notebook's metadata). Its content is then wrapped in ``<div lang="...">``, so that assistive
software reads it in that language; the navigation around it keeps the book's language.
"""

import html


def wrap_body(app, pagename, templatename, context, doctree):
    lang = app.env.metadata.get(pagename, {}).get("lang")
    if lang and "body" in context:
        context["body"] = f'<div lang="{html.escape(str(lang), quote=True)}">\n{context["body"]}\n</div>'


def setup(app):
    app.connect("html-page-context", wrap_body)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
