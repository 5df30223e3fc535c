"""What the self-contained HTML pages share (the preview, :mod:`amplifier.cli.html`; the report,
:mod:`amplifier.cli.report_html`): the document around their body, their inline assets (``templates_html/``,
package data) and escaping."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources


def asset(name: str) -> str:
    """A file of ``templates_html/`` (CSS, JavaScript), to inline."""
    return resources.files("amplifier.cli").joinpath("templates_html", name).read_text(encoding="utf-8")


def e(value: object) -> str:
    """``value`` as HTML text or attribute value."""
    return escape(str(value), quote=True)


def document(title: str, stylesheet: str, body: Sequence[str], scripts: Sequence[str] = ()) -> str:
    """A whole page: ``title`` (escaped here), the asset ``stylesheet`` inline, the ``body`` lines, then the
    ``scripts`` (whole ``<script>`` elements) at the end of the body."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="amplifier">',
            f"<title>{e(title)}</title>",
            f"<style>\n{asset(stylesheet)}</style>",
            "</head>",
            "<body>",
            *body,
            *scripts,
            "</body>",
            "</html>",
            "",
        ]
    )
