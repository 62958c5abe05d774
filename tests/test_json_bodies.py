"""The body check on its own: ordinary JSON passes untouched, and a repeated key or a number
outside the grammar is found wherever it is put, with the JSON Pointer of that place."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kap_outcomes.json_bodies import MAX_DEPTH, NUL_DETAIL, JsonProblem, check
from kap_outcomes.numbers import bounded_decimal

# Ordinary text: anything but a NUL (which no text may hold, see test_a_nul_is_found_…).
TEXT = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")
KEYS = st.text(alphabet=TEXT, min_size=1, max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**19), max_value=10**19)
    | st.floats(min_value=-1e15, max_value=1e15, allow_nan=False).filter(
        lambda f: f == 0 or abs(f) >= 1e-6
    )
    | st.text(alphabet=TEXT, max_size=20)
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=30,
)


def _pointer(path: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _containers(value: Any, path: list[str | int]) -> list[tuple[list[str | int], Any]]:
    if not isinstance(value, dict | list):
        return []
    found: list[tuple[list[str | int], Any]] = [(path, value)]
    for key, child in value.items() if isinstance(value, dict) else enumerate(value):
        found.extend(_containers(child, [*path, key]))
    return found


@settings(max_examples=200, deadline=None)
@given(DOCUMENTS)
def test_ordinary_documents_pass(document: Any) -> None:
    assert check(json.dumps(document).encode()) == []


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, DOCUMENTS, min_size=1, max_size=4), st.data())
def test_a_repeated_key_is_found_where_it_was_put(document: dict[str, Any], data: Any) -> None:
    objects = [(p, v) for p, v in _containers(document, []) if isinstance(v, dict) and v]
    path, target = data.draw(st.sampled_from(objects))
    key = data.draw(st.sampled_from(sorted(target)))
    marker = "\u2603repeated\u2603"
    target[marker] = None
    text = json.dumps(document)
    # write the chosen key a second time, in place of the marker
    text = text.replace(json.dumps(marker), json.dumps(key), 1)
    problems = check(text.encode())
    assert [(p.pointer, p.kind) for p in problems] == [(_pointer([*path, key]), "duplicate-key")]


@pytest.mark.parametrize(
    ("token", "accepted"),
    [
        ("0", True),
        ("-0", True),
        ("12345678901234567890", True),
        ("123456789012345678901", False),
        ("0.00001", True),
        ("1e-05", True),
        ("1.5E+12", True),
        ("1e99", True),
        ("1e100", False),
        ("1e200000", False),
        ("0." + "1" * 20, True),
        ("0." + "1" * 21, False),
        ("NaN", False),
        ("-Infinity", False),
    ],
)
def test_number_tokens_in_every_place(token: str, accepted: bool) -> None:
    for text in (f"{token}", f"[{token}]", f'{{"a": {{"b": [1, {token}]}}}}'):
        problems = check(text.encode())
        assert (problems == []) is accepted, text
    problems = check(f'{{"a": {{"b": [1, {token}]}}}}'.encode())
    if not accepted:
        assert [p.pointer for p in problems] == ["/a/b/1"]


def test_nesting_is_bounded_and_named() -> None:
    assert check(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) == []
    deeper = check(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert [p.pointer for p in deeper] == ["/0" * MAX_DEPTH]
    assert check(b"[" * 100_000 + b"]" * 100_000)[0].kind == "depth"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, Decimal(3)),
        (2.5, Decimal("2.5")),
        ("12", Decimal(12)),
        (" 10.0 ", Decimal("10.0")),
        ("-1", Decimal(-1)),
        ("1e3", None),
        ("1e200000", None),
        ("9" * 21, None),
        ("Infinity", None),
        ("NaN", None),
        ("", None),
        (True, None),
        (float("inf"), None),
        (10**20, None),
        (None, None),
    ],
)
def test_numbers_written_as_text_are_plain_decimals(value: Any, expected: Any) -> None:
    assert bounded_decimal(value) == expected


@settings(max_examples=200, deadline=None)
@given(DOCUMENTS, st.data())
def test_a_nul_is_found_where_it_was_put(document: Any, data: Any) -> None:
    """A NUL in any string, value or member name, is refused with the pointer to it."""
    root: dict[str, Any] = {"doc": document}
    places = [(p, v) for p, v in _containers(root, []) if v]
    path, target = data.draw(st.sampled_from(places))
    key = data.draw(
        st.sampled_from(list(target) if isinstance(target, dict) else range(len(target)))
    )
    if isinstance(target, dict) and data.draw(st.booleans()):
        target[f"{key}\x00"] = target.pop(key)  # in the member name
        key = f"{key}\x00"
    else:
        target[key] = "nul\x00here"
    assert check(json.dumps(root).encode()) == [
        JsonProblem(_pointer([*path, key]), NUL_DETAIL, "nul")
    ]


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    assert check(b'{"a": "x\\\\u0000y"}') == []
    assert check(b'{"a": "x\\u0000y"}')[0].kind == "nul"
