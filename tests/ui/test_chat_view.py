"""The chat transcript: streaming, Markdown safety, code blocks, retries, history, looks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QPalette, QTextCursor
from pytestqt.qtbot import QtBot

from valis_desktop.ui.chat_view import ChatView, HistoryItem

CODE = (
    'def greet(name: str) -> str:\n    return f"Hello, {name}!"  # friendly\n\nprint(greet("Ada"))'
)
CODE_ANSWER = f"""Here is a function:

```python
{CODE}
```

- it takes a **name**
- it returns a greeting
"""


class RecordingChatView(ChatView):
    """Remembers every resource Qt asks for."""

    def __init__(self, **kwargs: Any) -> None:
        self.requested: list[str] = []
        super().__init__(**kwargs)

    def loadResource(self, type: int, name: QUrl | str) -> Any:
        self.requested.append(name.toString() if isinstance(name, QUrl) else name)
        return super().loadResource(type, name)


@pytest.fixture
def view(qtbot: QtBot) -> ChatView:
    chat = RecordingChatView()
    qtbot.addWidget(chat)
    chat.resize(900, 600)
    chat.show()
    qtbot.waitExposed(chat)
    return chat


def finish(view: ChatView, message_id: str, text: str, status: str = "answered", **kw: Any) -> None:
    values: dict[str, Any] = {
        "provider": "local",
        "first_chunk_seconds": 0.42,
        "chars_per_second": 812.0,
    }
    values.update(kw)
    view.finish_answer(message_id, status=status, text=text, **values)


def answer(view: ChatView, message_id: str, text: str, status: str = "answered", **kw: Any) -> None:
    view.begin_answer(message_id)
    view.append_text(message_id, text)
    finish(view, message_id, text, status, **kw)


def anchor_cursor(view: ChatView, href: str) -> QTextCursor:
    """A cursor inside the first link to ``href``."""
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().anchorHref() == href:
                cursor = QTextCursor(view.document())
                cursor.setPosition(fragment.position() + min(1, fragment.length() - 1))
                return cursor
            it += 1
        block = block.next()
    raise AssertionError(f"no link to {href!r}")


def click_link(qtbot: QtBot, view: ChatView, href: str) -> None:
    """Scroll the link into view and click it with the mouse, as a user would."""
    cursor = anchor_cursor(view, href)
    view.setTextCursor(cursor)
    view.ensureCursorVisible()
    rect = view.cursorRect(cursor)
    point = QPoint(rect.center().x() + 1, rect.center().y())
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)


def hrefs(view: ChatView) -> list[str]:
    return re.findall(r'href="([^"]*)"', view.toHtml())


def test_streamed_text_is_plain_until_finished_then_rendered_once(view: ChatView) -> None:
    chunks = [f"**w{i}** " if i % 100 else f"\n\nPart {i // 100}: " for i in range(1000)]
    chunks.append("\n\nTHE END")
    view.add_user_message("u1", "Stream me something long")
    view.begin_answer("a1")
    for piece in chunks:
        view.append_text("a1", piece)

    streamed = "".join(chunks)
    assert view.toPlainText().endswith(streamed)  # Markdown is not rendered while streaming

    finish(view, "a1", streamed)
    text = view.toPlainText()
    assert text.count("THE END") == 1
    assert "**" not in text
    assert "w1 w2 w3" in text
    assert "local · first chunk 0.42 s · 812 chars/s" in text
    assert view.toHtml().count('font-weight:700;">w') == 990  # the bold words, once each


def test_note_shows_in_the_header_until_text_arrives(view: ChatView) -> None:
    view.begin_answer("a1")
    view.set_answer_note("a1", "waiting for a slot on local")
    assert "Assistant — waiting for a slot on local" in view.toPlainText()
    view.set_answer_note("a1", "loading model…")
    assert "waiting" not in view.toPlainText()
    assert "Assistant — loading model…" in view.toPlainText()

    view.append_text("a1", "Hello")
    assert "loading model" not in view.toPlainText()
    assert view.toPlainText().endswith("Assistant\nHello")


def test_raw_html_and_remote_images_stay_inert(view: RecordingChatView) -> None:
    hostile = (
        'Look: <script>alert(1)</script> and <img src="http://example.com/x.png"> and '
        '<b onclick="steal()">raw</b> and <iframe src="https://example.com"></iframe>\n\n'
        "![alt text](http://example.com/y.png) and [click](javascript:alert(2)) and "
        "[local](file:///etc/passwd)"
    )
    view.add_user_message("u1", '<img src="http://example.com/user.png">')
    answer(view, "a1", hostile)
    view.grab()  # painting is when Qt would fetch images

    text = view.toPlainText()
    for literal in (
        "<script>alert(1)</script>",
        '<img src="http://example.com/x.png">',
        '<b onclick="steal()">raw</b>',
        '<iframe src="https://example.com"></iframe>',
        "[click](javascript:alert(2))",
        "[local](file:///etc/passwd)",
        '<img src="http://example.com/user.png">',
    ):
        assert literal in text
    assert "[image: alt text]" in text
    exported = view.toHtml()
    assert not re.search(r"<(script|img|iframe)\b", exported)
    assert not re.search(r"<[^>]*\bon\w+\s*=", exported)  # no event handler on any element
    assert "http://example.com/y.png" in hrefs(view)
    assert not any(h.startswith(("javascript:", "file:")) for h in hrefs(view))
    assert not [name for name in view.requested if "://" in name]


def test_links_open_in_the_browser_only_for_web_and_mail(qtbot: QtBot, view: ChatView) -> None:
    opened: list[str] = []
    view.open_external = lambda url: opened.append(url.toString())
    answer(
        view,
        "a1",
        "See [the docs](https://example.com/docs) or ![a chart](http://example.com/c.png).",
    )

    click_link(qtbot, view, "https://example.com/docs")
    click_link(qtbot, view, "http://example.com/c.png")
    for url in ("javascript:alert(1)", "file:///etc/passwd", "ftp://example.com/x"):
        view.anchorClicked.emit(QUrl(url))

    assert opened == ["https://example.com/docs", "http://example.com/c.png"]
    assert view.source().isEmpty()  # the view never navigated anywhere


def test_code_is_highlighted_and_copy_puts_exactly_the_code_on_the_clipboard(
    qtbot: QtBot, view: ChatView
) -> None:
    answer(view, "a1", CODE_ANSWER)
    answer(view, "a2", "Second:\n\n```\nplain = True\n```")

    exported = view.toHtml()
    coloured = re.findall(r'<span style="[^"]*color:#[0-9a-fA-F]{6};?">([^<]+)</span>', exported)
    assert {"def", "greet", "# friendly"} <= {span.strip() for span in coloured}
    assert "font-family:'monospace'" in exported or "font-family:monospace" in exported

    QGuiApplication.clipboard().clear()
    first, second = (h for h in hrefs(view) if h.startswith("valis:copy/"))
    click_link(qtbot, view, first)
    assert QGuiApplication.clipboard().text() == CODE
    click_link(qtbot, view, second)
    assert QGuiApplication.clipboard().text() == "plain = True"

    answer(view, "a3", "```sh\n" + "echo " + "very-long-argument " * 40 + "\n```")
    assert view.horizontalScrollBar().maximum() == 0  # long lines wrap: Copy stays in view


@pytest.mark.parametrize("status", ["stopped", "failed", "interrupted"])
def test_unfinished_answers_keep_partial_text_and_offer_retries(
    qtbot: QtBot, view: ChatView, status: str
) -> None:
    message_id = "msg/1 ä"
    answer(view, message_id, "Half an ans", status, error="" if status == "stopped" else "HTTP 503")

    text = view.toPlainText()
    assert "Half an ans" in text
    said = {
        "stopped": "Stopped.",
        "failed": "Failed: HTTP 503",
        "interrupted": "Interrupted: HTTP 503",
    }
    assert (
        f"{said[status]} The partial answer is kept above. Retry · Retry with the next provider"
        in text
    )

    retry, retry_next = (h for h in hrefs(view) if h.startswith("valis:retry"))
    with qtbot.waitSignal(view.retry_requested) as retried:
        click_link(qtbot, view, retry)
    assert retried.args == [message_id]
    with qtbot.waitSignal(view.retry_next_requested) as retried_next:
        click_link(qtbot, view, retry_next)
    assert retried_next.args == [message_id]


def test_failure_without_text_or_next_provider(view: ChatView) -> None:
    view.finish_answer(
        "a1",
        status="failed",
        text="",
        provider=None,
        first_chunk_seconds=None,
        chars_per_second=None,
        error="no provider is available",
        can_retry_next=False,
    )
    text = view.toPlainText()
    assert "Failed: no provider is available Retry" in text
    assert "next provider" not in text and "partial" not in text


def test_links_are_reachable_with_the_keyboard(qtbot: QtBot, view: ChatView) -> None:
    answer(view, "a1", "Partial", "stopped")
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)

    qtbot.keyClick(view, Qt.Key.Key_Tab)
    assert view.textCursor().selectedText() == "Retry"
    with qtbot.waitSignal(view.retry_requested) as retried:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert retried.args == ["a1"]
    assert view.accessibleName() == "Conversation"
    assert view.focusPolicy() & Qt.FocusPolicy.TabFocus


def test_history_renders_in_order_and_pages_in_earlier_messages(
    qtbot: QtBot, view: ChatView
) -> None:
    items = [
        HistoryItem(f"m{i}", "user", f"question {i:03d}")
        if i % 2 == 0
        else HistoryItem(f"m{i}", "assistant", f"answer **{i:03d}**", provider="local")
        for i in range(300)
    ]
    view.load_history(items)

    def numbers() -> list[int]:
        return [int(n) for n in re.findall(r"(?:question|answer) (\d{3})", view.toPlainText())]

    assert view.shown_message_count() == 200
    assert numbers() == list(range(100, 300))
    assert view.toPlainText().lstrip().startswith("Show 100 earlier messages")
    bar = view.verticalScrollBar()
    assert bar.value() == bar.maximum() > 0

    def top_of(needle: str) -> int:
        cursor = view.document().find(needle)
        return view.cursorRect(cursor).top()

    view.begin_answer("live")
    view.append_text("live", "streaming while ")
    bar.setValue(bar.minimum())  # reaching the top brings in the earlier page...
    where = top_of("question 100")
    qtbot.waitUntil(lambda: view.shown_message_count() == 301)
    view.append_text("live", "the page came in")
    assert view.toPlainText().endswith("Assistant\nstreaming while the page came in")
    finish(view, "live", "streaming while the page came in")
    assert numbers() == list(range(300))
    assert not view.toPlainText().lstrip().startswith("Show")
    assert abs(top_of("question 100") - where) <= 1  # ...without moving what the user sees

    view.clear_conversation()
    assert view.toPlainText().strip() == ""


def test_the_show_earlier_link_loads_a_page(qtbot: QtBot) -> None:
    chat = ChatView(page_size=3)
    qtbot.addWidget(chat)
    chat.load_history([HistoryItem(f"n{i}", "notice", f"notice {i}") for i in range(5)])
    assert chat.shown_message_count() == 3
    chat.show()
    qtbot.waitExposed(chat)
    click_link(qtbot, chat, "valis:earlier")
    assert chat.shown_message_count() == 5
    assert re.findall(r"notice \d", chat.toPlainText()) == [f"notice {i}" for i in range(5)]


def test_streaming_follows_the_bottom_unless_the_user_scrolled_up(view: ChatView) -> None:
    view.load_history([HistoryItem(f"n{i}", "notice", f"notice {i}") for i in range(150)])
    bar = view.verticalScrollBar()
    view.begin_answer("a1")
    for i in range(50):
        view.append_text("a1", f"line {i}\n")
    assert bar.value() == bar.maximum()

    reading = bar.maximum() // 2
    bar.setValue(reading)  # the user scrolls up to read
    for i in range(50):
        view.append_text("a1", f"more {i}\n")
    assert bar.value() == reading < bar.maximum()
    finish(view, "a1", "done")
    assert bar.value() == reading

    bar.setValue(bar.maximum())  # back at the bottom: following again
    view.begin_answer("a2")
    for i in range(50):
        view.append_text("a2", f"again {i}\n")
    assert bar.value() == bar.maximum() > reading * 2


def test_answers_live_and_from_history_look_the_same(qtbot: QtBot) -> None:
    conversation = [
        HistoryItem("n1", "notice", "Persona changed to Coach"),
        HistoryItem("u1", "user", "How?\nTell me."),
        HistoryItem("a1", "assistant", CODE_ANSWER, provider="local", first_chunk_seconds=0.5),
        HistoryItem("a2", "assistant", "Par", "stopped", provider="local", chars_per_second=9.0),
    ]
    live, restored = ChatView(), ChatView()
    qtbot.addWidget(live)
    qtbot.addWidget(restored)
    for item in conversation:
        if item.role == "notice":
            live.add_notice(item.text)
        elif item.role == "user":
            live.add_user_message(item.message_id, item.text)
        else:
            live.begin_answer(item.message_id)
            live.set_answer_note(item.message_id, "loading model…")
            live.append_text(item.message_id, item.text)
            live.finish_answer(
                item.message_id,
                status=item.status,
                text=item.text,
                provider=item.provider,
                first_chunk_seconds=item.first_chunk_seconds,
                chars_per_second=item.chars_per_second,
            )
    restored.load_history(conversation)
    assert live.toHtml() == restored.toHtml()
    assert live.toPlainText() == restored.toPlainText()


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e0e0e0",
        QPalette.ColorRole.Base: "#1e1e1e",
        QPalette.ColorRole.Text: "#e0e0e0",
        QPalette.ColorRole.Highlight: "#3d7ee0",
        QPalette.ColorRole.Link: "#6ea8ff",
    }.items():
        palette.setColor(role, QColor(colour))
    return palette


def test_screenshot_light_and_dark(qtbot: QtBot, view: ChatView, tmp_path: Path) -> None:
    view.add_notice("Persona changed to Coach")
    view.add_user_message("u1", "How do I greet someone in Python?\nA function, please.")
    answer(view, "a1", CODE_ANSWER)
    view.add_user_message("u2", "And in French?")
    answer(view, "a2", 'Use `f"Bonjour, {name} !"` and keep the', "stopped")
    view.begin_answer("a3")
    view.set_answer_note("a3", "waiting for a slot on local")
    view.resize(900, 600)

    light = tmp_path / "chat_view.png"
    assert view.grab().save(str(light))
    assert light.stat().st_size > 0
    shutil.copyfile(light, "/tmp/chat_view.png")

    def bubble() -> QColor:
        return QColor(re.findall(r'bgcolor="(#[0-9a-fA-F]{6})"', view.toHtml())[0])

    assert bubble().lightness() > 200
    view.setPalette(dark_palette())
    assert bubble().lightness() < 80  # re-rendered in the dark palette's colours
    assert "Assistant — waiting for a slot on local" in view.toPlainText()  # stream kept
    dark = tmp_path / "chat_view_dark.png"
    assert view.grab().save(str(dark))
    shutil.copyfile(dark, "/tmp/chat_view_dark.png")
    view.append_text("a3", "Still streaming after the palette changed")
    assert view.toPlainText().endswith("Assistant\nStill streaming after the palette changed")


def test_a_message_added_while_an_answer_streams_does_not_split_it(view: ChatView) -> None:
    view.add_user_message("u1", "first")
    view.begin_answer("a1")
    view.append_text("a1", "one ")
    view.add_notice("Persona changed to Coach")
    view.append_text("a1", "two")
    finish(view, "a1", "one two")
    text = view.toPlainText()
    assert text.index("one two") < text.index("812 chars/s") < text.index("Persona changed")


def test_the_keyboard_scrolls_the_view(qtbot: QtBot, view: ChatView) -> None:
    view.load_history([HistoryItem(f"n{i}", "notice", f"notice {i}") for i in range(100)])
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    bar = view.verticalScrollBar()
    bottom = bar.value()
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    assert bar.value() < bottom
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert bar.value() == bottom
