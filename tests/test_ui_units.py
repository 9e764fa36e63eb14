"""Page helpers that need no browser: safe upload names, binding rules, rendering."""

from __future__ import annotations

import pytest

from assistant.errors import ConfigError
from assistant.schema import Answer, Citation
from assistant.ui import is_loopback, render_answer, render_sources, safe_name, serve, topics


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
    assert "<img" not in md and "&lt;img" in md and '<a href="#cite-0-1"' in md
    assert "<b>q</b>" not in render_sources(a) and "&lt;b&gt;q" in render_sources(a)
    abstained = Answer(question="q", text="The articles don't cover this.", abstained=True)
    assert render_answer(abstained).startswith("**Not in the articles.**")


def test_markers_preview_their_quote_and_the_answer_carries_its_sources() -> None:
    c = Citation(source="a.txt", quote="Sudzha fell <quickly>.", start=0, end=22, title="Sudzha falls",
                 date="2025-03-13")
    a = Answer(question="q", text="Sudzha fell quickly. [1] It was retaken. [1]", citations=[c])
    md = render_answer(a, 3)
    # the spaces around markers survive; hovering [1] shows the quote, the headline and the date
    assert "quickly\\. <a" in md and "</a> It was" in md and 'href="#cite-3-1"' in md
    assert 'title="“Sudzha fell &lt;quickly&gt;.” — Sudzha falls (2025-03-13)"' in md
    assert "<summary>Sources (1)</summary>" in md
    assert "[1] Sudzha falls (2025-03-13): “Sudzha fell &lt;quickly&gt;.”" in md
    assert "data-cite='3-1'" in render_sources(a, 3)


def test_topics_name_what_most_articles_mention_once() -> None:
    class R:
        def __init__(self, source: str, text: str) -> None:
            self.source, self.text = source, text

    class C:
        records = [R("a", "In the war, Russia and Ukraine met. Then Russian troops moved in March."),
                   R("b", "Talks with Ukraine stalled as Russia waited."),
                   R("c", "Talks went on in Oslo with Ukraine.")]

    assert topics(C()) == ["Ukraine", "Russia", "Oslo"]
