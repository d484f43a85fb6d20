"""What each message of the transcript looks like: palette-derived colours, CSS and HTML.

Qt's rich text is a subset of HTML 4 and CSS 2: no padding on paragraphs (table cells have
it, so bubbles and code blocks are one-cell tables), no borders on blocks, and a document-wide
stylesheet that Qt applies when HTML is parsed — a palette change therefore means re-rendering.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from PySide6.QtGui import QColor, QPalette

from valis_desktop.ui.markdown_render import CodeTheme, render_markdown

__all__ = ["GAP", "HistoryItem", "MessageTheme", "message_html", "stream_header_html"]

#: Opens every message: a thin spacer paragraph (see ``chat_view`` for why it must be there).
GAP = '<p class="gap">&nbsp;</p>'
GAP_PIXEL_SIZE = 5
_PROBLEMS = {"failed": "Failed", "stopped": "Stopped", "interrupted": "Interrupted"}


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One message of a stored conversation, as ``ChatView.load_history`` shows it."""

    message_id: str
    role: Literal["user", "assistant", "notice"]
    text: str
    status: str = "answered"
    provider: str | None = None
    first_chunk_seconds: float | None = None
    chars_per_second: float | None = None
    error: str = ""
    can_retry_next: bool = True
    passed_over: str = ""
    """Why providers earlier in the chain did not answer ("Local model failed: …")."""
    left_out: int = 0
    """Earlier messages left out of the context to fit the provider's."""


@dataclass(frozen=True, slots=True)
class MessageTheme:
    """Colours taken from the widget's palette, so light and dark desktops both read well."""

    muted: str
    accent: str
    link: str
    user_background: str
    problem: str
    inline_code: str
    code: CodeTheme

    @classmethod
    def from_palette(cls, palette: QPalette) -> MessageTheme:
        """Derive the transcript's colours from ``palette``."""
        base = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        accent = palette.color(QPalette.ColorRole.Highlight)
        dark = base.lightness() < 128
        return cls(
            muted=_mix(text, base, 0.62),
            accent=_mix(accent, text, 0.35 if dark else 0.8),
            link=palette.color(QPalette.ColorRole.Link).name(),
            user_background=_mix(accent, base, 0.16 if dark else 0.1),
            problem="#f2a097" if dark else "#b3261e",
            inline_code=_mix(text, base, 0.12),
            code=CodeTheme.for_palette(dark=dark),
        )

    def stylesheet(self) -> str:
        """The document's default CSS."""
        return (
            "p { margin-top: 0px; margin-bottom: 6px; }"
            f"p.gap {{ margin: 0px; font-size: {GAP_PIXEL_SIZE}px; }}"
            "p.head { margin-top: 4px; margin-bottom: 3px; }"
            f"span.who {{ font-weight: bold; color: {self.accent}; }}"
            f"span.note {{ color: {self.muted}; font-style: italic; }}"
            f"p.meta {{ color: {self.muted}; font-size: small; margin-top: 2px; }}"
            f"p.problem {{ color: {self.problem}; margin-top: 2px; }}"
            f"p.notice {{ color: {self.muted}; font-size: small; margin: 2px; }}"
            "p.user { margin: 0px; white-space: pre-wrap; }"
            f"a {{ color: {self.link}; }}"
            f"code {{ font-family: monospace; background-color: {self.inline_code}; }}"
            "pre { font-family: monospace; margin: 0px; white-space: pre-wrap; }"
            "td.codebar { padding-left: 8px; padding-right: 8px; padding-top: 2px;"
            " padding-bottom: 2px; font-size: small; }"
            "td.codebody { padding: 8px; }"
            "table.code { margin-top: 2px; margin-bottom: 8px; }"
            "table.md { margin-bottom: 8px; }"
            "h1 { font-size: x-large; } h2 { font-size: large; } h3 { font-size: medium; }"
            "h1, h2, h3, h4, h5, h6 { margin-top: 8px; margin-bottom: 4px; }"
            "ul, ol { margin-top: 0px; margin-bottom: 6px; } li { margin-bottom: 2px; }"
            f"blockquote {{ color: {self.muted}; margin-left: 16px; }}"
        )


def stream_header_html(note: str) -> str:
    """The inline content of an open answer's header line."""
    shown = f'<span class="note"> — {html.escape(note)}</span>' if note else ""
    return f'<span class="who">Assistant</span>{shown}'


def message_html(
    item: HistoryItem, theme: MessageTheme, copy_url_prefix: str
) -> tuple[str, tuple[str, ...]]:
    """The HTML of a finished message (without the gap) and the code of its code blocks."""
    if item.role == "notice":
        return f'<p class="notice" align="center">{html.escape(item.text)}</p>', ()
    if item.role == "user":
        text = html.escape(item.text).replace("\n", "<br>")
        bubble = (
            '<table width="100%" cellspacing="0" cellpadding="10" border="0">'
            f'<tr><td bgcolor="{theme.user_background}">'
            '<p class="head"><span class="who">You</span></p>'
            f'<p class="user">{text}</p>{_unsent_html(item)}</td></tr></table>'
        )
        return bubble, ()
    rendered = render_markdown(item.text, theme.code, copy_url_prefix)
    header = f'<p class="head">{stream_header_html("")}</p>'
    return header + rendered.html + _footer_html(item), rendered.code_blocks


_UNSENT = {
    "not sent": "Not sent: Valis Desktop closed before this message's turn.",
    "cancelled": "Cancelled before it was sent.",
}


RESENT = "resent"
"""The status a never-sent message shows once it was sent again (further down)."""


def _unsent_html(item: HistoryItem) -> str:
    """For a stored message that never reached a model: why, and a link to send it now."""
    if item.status == RESENT:
        return '<p class="meta">Sent again below.</p>'
    said = _UNSENT.get(item.status)
    if said is None or not item.message_id:
        return ""
    target = quote(item.message_id, safe="")
    link = f'<a href="valis:resend/{target}">Send it now</a>'
    return f'<p class="problem">{html.escape(said)} {link}</p>'


def _footer_html(item: HistoryItem) -> str:
    facts = [item.provider] if item.provider else []
    if item.first_chunk_seconds is not None:
        seconds = item.first_chunk_seconds
        facts.append(
            f"first chunk {seconds:.2f} s" if seconds < 10 else f"first chunk {seconds:.0f} s"
        )
    if item.chars_per_second is not None:
        facts.append(f"{item.chars_per_second:,.0f} chars/s")
    if item.left_out:
        facts.append(f"{item.left_out} earlier messages left out to fit its context")
    footer = f'<p class="meta">{html.escape(" · ".join(facts))}</p>' if facts else ""
    if item.passed_over:
        footer += f'<p class="meta">Tried first: {html.escape(item.passed_over)}</p>'
    problem = _PROBLEMS.get(item.status)
    if problem is None:
        return footer
    said = f"{problem}: {item.error}" if item.error else f"{problem}."
    if item.text:
        said += " The partial answer is kept above."
    target = quote(item.message_id, safe="")
    links = f'<a href="valis:retry/{target}">Retry</a>'
    if item.can_retry_next:
        links += f' · <a href="valis:retry-next/{target}">Retry with the next provider</a>'
    return f'{footer}<p class="problem">{html.escape(said)} {links}</p>'


def _mix(a: QColor, b: QColor, weight_a: float) -> str:
    w = max(0.0, min(1.0, weight_a))
    pairs = ((a.red(), b.red()), (a.green(), b.green()), (a.blue(), b.blue()))
    return "#" + "".join(f"{round(x * w + y * (1 - w)):02x}" for x, y in pairs)
