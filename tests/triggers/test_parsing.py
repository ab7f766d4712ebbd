"""Cutting sensor output into lines and lines into values (file and serial triggers)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capture.config.schema import SerialTrigger
from capture.triggers.parsing import LineSplitter, ValueParser
from capture.triggers.values import PayloadFormatError


def parser(**options: object) -> ValueParser:
    return ValueParser(SerialTrigger(type="serial", port="/dev/ttyUSB0", **options))


def test_partial_line_waits_for_its_end() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"T=36.") == ([], 0)
    assert splitter.pending == 5
    assert splitter.feed(b"9\r\nT=37") == ([b"T=36.9"], 0)


def test_cr_lf_and_crlf_all_end_lines_and_empty_lines_are_skipped() -> None:
    assert LineSplitter().feed(b"a\rb\nc\r\n\r\nd\n") == ([b"a", b"b", b"c", b"d"], 0)


def test_garbage_without_line_ends_is_dropped_once_and_memory_stays_bounded() -> None:
    splitter = LineSplitter(max_bytes=100)
    dropped = 0
    for _ in range(50):
        lines, count = splitter.feed(b"x" * 64)
        assert lines == []
        dropped += count
        assert splitter.pending <= 100
    lines, count = splitter.feed(b"xxx\nT=1\n")
    assert lines == [b"T=1"]
    assert dropped + count == 1


@given(
    st.lists(
        st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b),
        max_size=10,
    ),
    st.data(),
)
def test_chunking_never_changes_the_lines(lines: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    splitter = LineSplitter()
    got: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += splitter.feed(stream[start:end])[0]
    assert got == [line for line in lines if line.strip()]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("T=36.9C", 36.9),
        ("2026-11-25 08:00:01 Temp 37,5", 37.5),
        ("temp37.5", 37.5),
        ("T: -3.5", -3.5),
        ("count 7", 7),
        ("2026-11-25", 25),
    ],
)
def test_number_parser_takes_the_last_number(line: str, expected: float) -> None:
    values = parser(value_name="temp").parse(line)
    assert values == {"temp": expected, "line": line}


def test_a_line_without_a_number_is_noise() -> None:
    with pytest.raises(PayloadFormatError, match="no number"):
        parser().parse("ERR sensor")


def test_regex_named_groups_become_values_numbers_as_numbers() -> None:
    values = parser(parser="regex", pattern=r"ID=(?P<id>\w+) T=(?P<temp>[\d.]+)").parse(
        "ID=0042 T=37.8 ok"
    )
    assert values == {"id": "0042", "temp": 37.8, "line": "ID=0042 T=37.8 ok"}
    assert values["temp"] >= 37.5


def test_regex_that_does_not_match_is_noise() -> None:
    with pytest.raises(PayloadFormatError, match="does not match"):
        parser(parser="regex", pattern=r"T=(?P<temp>[\d.]+)").parse("hello")


def test_csv_columns_with_skipped_ones() -> None:
    values = parser(parser="csv", columns=["station", "", "temp"], delimiter=";").parse("S3;x;37,9")
    assert values == {"station": "S3", "temp": 37.9, "line": "S3;x;37,9"}


def test_csv_line_with_too_few_columns_is_noise() -> None:
    with pytest.raises(PayloadFormatError, match="columns"):
        parser(parser="csv", columns=["a", "b"]).parse("1")


def test_json_lines_flatten_nested_fields() -> None:
    values = parser(parser="json").parse('{"part": {"id": 7}, "t": 36.6}')
    assert values["part.id"] == 7
    assert values["t"] == 36.6


def test_text_parser_keeps_the_line_as_is() -> None:
    assert parser(parser="text", value_name="code").parse(" 4006381333931 \r") == {
        "code": "4006381333931",
        "line": "4006381333931",
    }


def test_undecodable_bytes_are_noise_with_the_encoding_named() -> None:
    with pytest.raises(PayloadFormatError, match="utf-8"):
        parser().parse_bytes(b"T=\xff36")


def test_other_encodings_are_honoured() -> None:
    assert parser(parser="text", encoding="latin-1").parse_bytes(b"36\xb0C")["value"] == "36°C"
