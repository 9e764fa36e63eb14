"""Page helpers that need no browser: safe upload names, binding rules, rendering."""

from __future__ import annotations

import pytest

from assistant.errors import ConfigError
from assistant.schema import Answer, Citation
from assistant.ui import is_loopback, render_answer, render_sources, safe_name, serve


@pytest.mark.parametrize(
    "raw,expected",
    [("../../etc/passwd.txt", "passwd.txt"), ("/abs/path/a.md", "a.md"), ("..\\..\\win.txt", "win.txt"),
     (".hidden.txt", "hidden.txt"), ("my article (1).TXT", "my_article_1.txt"), ("..", "article"),
     ("a" * 300 + ".md", "a" * 80 + ".md")],
)
def test_safe_name(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected
    assert "/" not in safe_name(raw) and not safe_name(raw).startswith(".")


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.10")


def test_off_loopback_needs_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="ASSISTANT_AUTH_USERNAME"):
        serve(host="0.0.0.0", port=1)


def test_rendered_answer_escapes_html_and_links_markers() -> None:
    a = Answer(question="q", text="<img src=x onerror=alert(1)> says 5 [1].",
               citations=[Citation(source="a.txt", quote="<b>q</b>", start=0, end=8)])
    md = render_answer(a)
    assert "<img" not in md and "&lt;img" in md and "[[1]](#cite-0-1)" in md
    assert "<b>q</b>" not in render_sources(a) and "&lt;b&gt;q" in render_sources(a)
    abstained = Answer(question="q", text="The articles don't cover this.", abstained=True)
    assert render_answer(abstained).startswith("**Not in the articles.**")
