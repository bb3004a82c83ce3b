"""Update text on the website: Zulip Markdown to HTML that cannot do harm, and the charts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zulip_goals_bot.website.charts import WeekBar, activity_strip, health_chart
from zulip_goals_bot.website.text import ZulipMarkdown, plain, plain_paragraphs

ZULIP = "https://zulip.example.com"


@pytest.fixture(scope="module")
def md() -> ZulipMarkdown:
    return ZulipMarkdown(ZULIP)


HOSTILE = (
    "<script>alert(1)</script>\n"
    "[click me](javascript:alert(2)) <a href='javascript:alert(3)'>x</a>\n"
    '<img src=x onerror="alert(4)"> <b onmouseover=alert(5)>bold</b>\n'
    "@**all** @**everyone** @_**Ben Owner|12** @*devs*\n"
    "[data](data:text/html;base64,PHNjcmlwdD4=) <iframe src=https://evil.example>\n"
    "![pixel](https://tracker.example/p.gif)"
)


def test_hostile_text_is_inert(md: ZulipMarkdown) -> None:
    html = md.block(HOSTILE)
    assert "<script" not in html and "<iframe" not in html and "<img" not in html
    assert not re.search(r"\son\w+\s*=", html.replace("onerror=", "").replace("onmouseover=", ""))
    assert "javascript:" not in re.sub(r">[^<]*<", "><", html)  # only in visible text, if at all
    assert "data:text" not in re.findall(r'href="([^"]*)"', html)
    # What a reader sees: the text as typed, not markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html
    # Mentions and wildcards are names in plain text, never Zulip's mention syntax.
    assert '<span class="mention">@all</span>' in html
    assert '<span class="mention">@everyone</span>' in html
    assert '<span class="mention">@Ben Owner</span>' in html
    assert '<span class="mention">@devs</span>' in html
    assert "@**" not in html
    # An image would load from outside the site: it is a link instead.
    assert 'href="https://tracker.example/p.gif"' in html
    # Every link that is left is http(s) and says nofollow noopener.
    for tag in re.findall(r"<a [^>]*>", html):
        assert re.search(r'href="https?://', tag), tag
        assert 'rel="nofollow noopener"' in tag, tag


def test_a_mention_cannot_smuggle_a_link(md: ZulipMarkdown) -> None:
    html = md.block("@**[x](javascript:alert(1))|5** and @**<b>n</b>**")
    assert "<a" not in html and "<b>" not in html
    assert '<span class="mention">@[x](javascript:alert(1))</span>' in html
    assert '<span class="mention">@&lt;b&gt;n&lt;/b&gt;</span>' in html


def test_zulip_syntax_reads_as_text(md: ZulipMarkdown) -> None:
    html = md.block(
        "See #**project-goals>Polonius (goals#118)** and #**general**, "
        "asked <time:2025-03-06T14:00:00+00:00>; [the PR](#narrow/id/12) "
        "and https://github.com/rust-lang/rust/pull/1."
    )
    assert '<span class="stream">#project-goals › Polonius (goals#118)</span>' in html
    assert '<span class="stream">#general</span>' in html
    assert '<time datetime="2025-03-06T14:00:00+00:00">2025-03-06 14:00 UTC</time>' in html
    # A link relative to Zulip points into Zulip; a bare URL is a link, as Zulip shows it.
    assert f'<a href="{ZULIP}/#narrow/id/12" rel="nofollow noopener">the PR</a>' in html
    assert 'href="https://github.com/rust-lang/rust/pull/1"' in html


def test_relative_links_are_dropped_without_a_zulip_url() -> None:
    html = ZulipMarkdown(None).block("[here](#narrow/id/12)")
    assert html == '<p><a rel="nofollow noopener">here</a></p>\n'


def test_quotes_spoilers_code_and_headings(md: ZulipMarkdown) -> None:
    html = md.block(
        "# Status\n```quote\nquoted **bold** @**all**\n```\n"
        '```spoiler Details\nhidden\n```\n```rust\nlet x = "<b>";\n```'
    )
    assert "<h4>Status</h4>" in html  # under the page's own headings
    assert "<blockquote><p>quoted <strong>bold</strong>" in html
    assert '<span class="mention">@all</span>' in html
    assert "<details><summary>Details</summary><p>hidden</p>" in html
    assert "<pre><code>let x = &quot;&lt;b&gt;&quot;;\n</code></pre>" in html.replace('"', "&quot;")


def test_inline_lines_and_plain_words(md: ZulipMarkdown) -> None:
    assert md.inline("`code` for @**Ben|3**") == (
        '<code>code</code> for <span class="mention">@Ben</span>'
    )
    assert plain("hi @**Ben Owner|12**, see #**s>t@99** at <time:2025-03-06T14:00:00Z>") == (
        "hi @Ben Owner, see #s › t at 2025-03-06 14:00 UTC"
    )


def test_edited_messages_are_rendered_again(md: ZulipMarkdown) -> None:
    md.start_build()
    first = md.message(7, "**one**")
    md.start_build()
    assert md.message(7, "**one**") == first
    assert md.message(7, "*two*") == "<p><em>two</em></p>\n"


# Plain prose skips the parser; on any text it accepts, its HTML must be the parser's.
_PROSE = st.lists(
    st.sampled_from([*"abcXYZ 019.,;:!?'\"()$%^{}=+-/\n", "\u00a0", "é", "\u2003", "w", "www."]),
    max_size=40,
).map("".join)


@settings(max_examples=3000, deadline=None)
@given(_PROSE)
def test_plain_prose_renders_as_the_parser_does(text: str) -> None:
    md = ZulipMarkdown(ZULIP)
    fast = plain_paragraphs(text)
    if fast is not None:
        assert fast == md.parsed(text)


@pytest.mark.parametrize(
    "text",
    ["- a list", "1. one", "> quote", "    code", "a | b", "see https://x.org", "www.x.org",
     "**bold**", "@**all**", "#**s**", "<b>", "a & b", "x\n---", "tab\there"],
)  # fmt: skip
def test_anything_that_may_be_markdown_goes_to_the_parser(text: str) -> None:
    assert plain_paragraphs(text) is None


def test_charts_state_their_numbers_in_text() -> None:
    bars = [WeekBar("2025-03-06", 3, 2, 1), WeekBar("2025-03-13", 4, 1, 0)]
    svg = health_chart(bars)
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg
    assert "Latest week: 4 goals updated, 1 due, 0 overdue." in svg
    assert "2025-03-06: 3/2/1; 2025-03-13: 4/1/0" in svg
    assert health_chart([]) == ""
    strip = activity_strip([0, 2, 5], ["w1", "w2", "w3"], name="Updates of <X>")
    assert 'aria-label="Updates of &lt;X&gt;: 7 updates in the last 3 weeks, in 2 of them"' in strip
    assert strip.count("<rect") == 3
