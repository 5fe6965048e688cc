"""Sphinx extension of this book: each page lists a script once. sphinx-thebe adds its inline configuration
on every ``env-before-read-docs`` event, and an incremental build fires that event again, so the page
declared ``const THEBE_JS_URL`` twice: a SyntaxError in every page's console (found by
tests/check_book_in_browser.py)."""


def _dedupe(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for js in context.get("script_files", []):
        ident = (str(getattr(js, "filename", js) or ""),  # added twice: once with filename None, once ""
                 tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if ident not in seen:
            seen.add(ident)
            unique.append(js)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
