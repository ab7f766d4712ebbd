"""Flattening untrusted payloads into bounded event values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capture.triggers.values import (
    MAX_DEPTH,
    MAX_VALUES,
    PayloadFormatError,
    coerce,
    flatten,
    parse_json,
    to_number,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("37.5", 37.5),
        (" 37,5 ", 37.5),
        ("-3", -3),
        ("0", 0),
        ("+12", 12),
        (".5", 0.5),
        ("1e3", None),
        ("0042", None),
        ("12345678901234567890", None),
        ("nan", None),
        ("1.0e999", None),  # too large for a float: stays text, never infinity
        ("37.5C", None),
        ("", None),
    ],
)
def test_to_number_reads_what_a_technician_means(text: str, expected: object) -> None:
    assert to_number(text) == expected


def test_part_numbers_with_leading_zeros_stay_text() -> None:
    assert coerce("0042") == "0042"
    assert coerce("42") == 42


def test_nested_objects_and_arrays_flatten_by_dotted_path() -> None:
    document = {"part": {"id": "A-7", "ok": True, "size": "12.5"}, "sizes": [1, 2], "x": None}
    assert flatten(document) == {
        "part.id": "A-7",
        "part.ok": True,
        "part.size": 12.5,
        "sizes.0": 1,
        "sizes.1": 2,
        "x": None,
    }


def test_a_document_that_is_not_an_object_becomes_the_named_value() -> None:
    assert flatten(37.5, "temp") == {"temp": 37.5}
    assert flatten([1, 2], "v") == {"v.0": 1, "v.1": 2}


def test_absurd_nesting_is_rejected() -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH + 1):
        deep = {"a": deep}
    with pytest.raises(PayloadFormatError, match="nested deeper"):
        flatten(deep)


def test_nesting_that_breaks_the_json_parser_is_rejected_not_crashing() -> None:
    with pytest.raises(PayloadFormatError):
        parse_json("[" * 100_000)


def test_too_many_values_are_rejected() -> None:
    with pytest.raises(PayloadFormatError, match="more than"):
        flatten({f"k{i}": i for i in range(MAX_VALUES + 1)})


def test_nan_and_invalid_json_are_rejected_with_a_reason() -> None:
    with pytest.raises(PayloadFormatError, match="NaN"):
        parse_json('{"t": NaN}')
    with pytest.raises(PayloadFormatError, match="invalid JSON"):
        parse_json("{temp: 1}")


def test_a_number_too_large_for_a_float_is_null_not_infinity() -> None:
    """JSON's 1e400 parses as infinity, which no event message or API answer may carry."""
    values = flatten(parse_json('{"order": 1e400, "t": -1e400, "ok": 2.5, "s": "1.0e999"}'))
    assert values == {"order": None, "t": None, "ok": 2.5, "s": "1.0e999"}
    json.dumps(values, allow_nan=False)  # valid JSON


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=40,
)


@given(json_values)
def test_any_json_document_flattens_to_scalars_or_is_rejected(document: object) -> None:
    try:
        values = flatten(parse_json(json.dumps(document)))
    except PayloadFormatError:
        return
    assert len(values) <= MAX_VALUES
    for value in values.values():
        assert value is None or isinstance(value, str | int | float | bool)
