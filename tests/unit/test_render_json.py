"""The report's JSON text: the fast encoder writes exactly what ``json`` writes."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.cli.render import _may_differ, json_text

numbers = (st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0.0, -0.0, 1e-5, 1.6666666666666667e-05, 1e-4, 1e16, 1e15,
                              5e-324, 0.1 + 0.2, 2**53 - 1, 2**63, -(2**63) - 1]))
values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(values)
def test_json_text_is_the_json_module_text(document: Any) -> None:
    assert json_text(document) == json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def test_small_floats_and_huge_integers_take_the_exact_path() -> None:
    for document in ({"mean": 1e-05}, {"share": -1e-06}, [2**64], {"a": "0.0000"},
                     [1e-300, 90.00000833333333], {"x": 0.00001}):
        assert json_text(document) == json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=20) | st.text("0.e-19x", max_size=20).map(str.encode))
def test_the_fast_check_finds_what_the_pattern_finds(text: bytes) -> None:
    """``_may_differ`` is ``re.search(rb"(?<![\\d.])0\\.0000|\\de-", text)``, without the
    regex's slow scan of a large report."""
    pattern = re.compile(rb"(?<![\d.])0\.0000|\de-")
    assert _may_differ(text) == (pattern.search(text) is not None)
