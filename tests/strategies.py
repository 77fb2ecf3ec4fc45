"""Hypothesis strategies shared by several test modules: names as the product accepts them."""

from __future__ import annotations

from hypothesis import strategies as st

LOWER = "abcdefghijklmnopqrstuvwxyz"
# Built from parts: hypothesis' from_regex is slow enough to dominate the suite.
_words = st.text(alphabet=LOWER + "0123456789", min_size=1, max_size=6)
_heads = st.builds(lambda a, b: a + b, st.sampled_from(LOWER), st.just("") | _words)
component_names = st.builds(
    lambda head, rest: "-".join([head, *rest]), _heads, st.lists(_words, max_size=2)
)
"""Legal component names: lower-case words joined by dashes, starting with a letter."""

pg_names = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=63,
).filter(lambda name: len(name.encode()) <= 63)
"""Legal PostgreSQL database names: 1 to 63 bytes of UTF-8, no NUL."""
