"""Slack's mrkdwn text: escaped control characters, clipped lengths."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.mrkdwn import ELLIPSIS, MAX_TEXT, clip, escape


def test_the_three_control_characters_are_escaped_and_nothing_else() -> None:
    assert escape("<@U1> & <!here> > *bold*") == "&lt;@U1&gt; &amp; &lt;!here&gt; &gt; *bold*"
    assert escape("&amp;") == "&amp;amp;"  # typed text is shown as typed, never unescaped


def test_text_within_the_limit_is_kept_and_longer_text_is_cut_with_a_mark() -> None:
    assert clip("x" * MAX_TEXT) == "x" * MAX_TEXT
    cut = clip("x" * (MAX_TEXT + 1))
    assert len(cut) == MAX_TEXT and cut.endswith(ELLIPSIS)
    assert clip("abcdef", 4) == "abc" + ELLIPSIS


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_clipped_text_never_exceeds_its_limit(text: str, limit: int) -> None:
    clipped = clip(text, limit)
    assert len(clipped) <= limit
    assert clipped == text or clipped == text[: limit - 1] + ELLIPSIS
