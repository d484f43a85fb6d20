"""Markdown from a model → safe HTML in the subset Qt's rich text understands.

Raw HTML in the source is never interpreted: markdown-it runs with ``html`` off, so a
``<script>`` or ``<img>`` written by a model arrives in the output escaped, as text. Links are
kept only for ``http``, ``https`` and ``mailto``; Markdown images become plain links (nothing is
ever fetched). Fenced code is highlighted by pygments into ``<span style="color:…">`` runs, which
Qt renders, and sits in a one-cell table (Qt blocks cannot have padding, table cells can) under a
bar with the language and a "Copy" link.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.style import StyleMeta
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound

__all__ = ["CodeTheme", "RenderedMarkdown", "highlight", "render_markdown"]

# Past this size a code block is shown without colours: lexing is linear but pure Python.
_HIGHLIGHT_LIMIT = 40_000
_SAFE_LINK = re.compile(r"(?i)^(?:https?://|mailto:)")


@dataclass(frozen=True, slots=True)
class CodeTheme:
    """How code blocks look: a pygments style and the colours around it."""

    style: str
    background: str
    foreground: str
    bar_background: str
    bar_foreground: str
    border: str

    @classmethod
    def for_palette(cls, *, dark: bool) -> CodeTheme:
        """A theme readable on a light or on a dark window palette."""
        if dark:
            return cls("github-dark", "#0d1117", "#e6edf3", "#21262d", "#9da7b3", "#30363d")
        return cls("default", "#f6f8fa", "#1f2328", "#eaeef2", "#57606a", "#d0d7de")


@dataclass(frozen=True, slots=True)
class RenderedMarkdown:
    """The HTML of one message and the source of each of its code blocks, in order."""

    html: str
    code_blocks: tuple[str, ...]


def render_markdown(text: str, theme: CodeTheme, copy_url_prefix: str) -> RenderedMarkdown:
    """Render ``text`` as Markdown; code block *n* gets a Copy link to ``copy_url_prefix + n``."""
    env: dict[str, Any] = {"theme": theme, "copy_prefix": copy_url_prefix, "code": []}
    body = _parser().render(text, env)
    return RenderedMarkdown(body, tuple(env["code"]))


def _valid_link(url: str) -> bool:
    return _SAFE_LINK.match(url.strip()) is not None


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    # Anything that is not http(s) or mailto stays literal text instead of becoming a link.
    md.validateLink = _valid_link  # type: ignore[method-assign]
    md.add_render_rule("fence", _render_code)
    md.add_render_rule("code_block", _render_code)
    md.add_render_rule("image", _render_image)
    md.add_render_rule("table_open", _render_table_open)
    md.add_render_rule("link_open", _render_link_open)
    return md


def _render_code(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    code = token.content[:-1] if token.content.endswith("\n") else token.content
    language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    theme: CodeTheme = env["theme"]
    blocks: list[str] = env["code"]
    href = html.escape(f"{env['copy_prefix']}{len(blocks)}", quote=True)
    blocks.append(code)
    label = html.escape(language) if language else "code"
    return (
        f'<table class="code" width="100%" cellspacing="0" cellpadding="0" border="0">'
        f'<tr><td class="codebar" bgcolor="{theme.bar_background}" '
        f'style="color:{theme.bar_foreground}">{label}</td>'
        f'<td class="codebar" align="right" bgcolor="{theme.bar_background}">'
        f'<a href="{href}">Copy</a></td></tr>'
        f'<tr><td class="codebody" colspan="2" bgcolor="{theme.background}">'
        f'<pre style="color:{theme.foreground}">'
        f"{highlight(code, language, theme.style)}</pre></td></tr></table>\n"
    )


def _render_image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{html.escape(src, quote=True)}">[image: {html.escape(alt)}]</a>'


def _render_table_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    theme: CodeTheme = env["theme"]
    return (
        f'<table class="md" border="1" cellspacing="0" cellpadding="4" '
        f'style="border-color:{theme.border}; border-style:solid; border-collapse:collapse">\n'
    )


def _render_link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # Drop title and any other attribute: Qt ignores them, and less HTML parses faster.
    href = str(tokens[idx].attrGet("href") or "")
    return f'<a href="{html.escape(href, quote=True)}">'


def highlight(code: str, language: str, style: str) -> str:
    """Escaped ``code`` with pygments colours as inline-styled spans (Qt ignores CSS classes)."""
    lexer = _lexer(language.lower()) if language and len(code) <= _HIGHLIGHT_LIMIT else None
    if lexer is None:
        return html.escape(code, quote=False)
    parts: list[str] = []
    run_css = ""
    run: list[str] = []
    for token_type, value in lexer.get_tokens(code):
        # Whitespace joins the current run whatever its token type: fewer spans to parse.
        css = run_css if value.isspace() else _token_css(style, token_type)
        if css != run_css and run:
            parts.append(_span(run_css, "".join(run)))
            run = []
        run_css = css
        run.append(value)
    if run:
        parts.append(_span(run_css, "".join(run)))
    return "".join(parts)


def _span(css: str, text: str) -> str:
    escaped = html.escape(text, quote=False)
    return f'<span style="{css}">{escaped}</span>' if css else escaped


@functools.cache
def _lexer(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


@functools.cache
def _token_css(style_name: str, token_type: _TokenType) -> str:
    style: StyleMeta = get_style_by_name(style_name)
    definition = style.style_for_token(token_type)
    css = []
    if definition["color"]:
        css.append(f"color:#{definition['color']}")
    if definition["bold"]:
        css.append("font-weight:bold")
    if definition["italic"]:
        css.append("font-style:italic")
    return "; ".join(css)
