"""Filename templates: what they render, how mistakes are reported, and that no value escapes the root."""

from __future__ import annotations

import re
import tracemalloc
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pathvalidate import validate_filename

from capture.config.schema import DEFAULT_FILENAME, StorageConfig
from capture.storage import Storage
from capture.template import (
    BUILTIN_FIELDS,
    MAX_COMPONENT_BYTES,
    MAX_PATH_BYTES,
    MISSING,
    TIME_FIELDS,
    TemplateError,
    builtin_fields_table,
    parse_template,
    template_fields,
    with_suffix_counter,
)

BERLIN = ZoneInfo("Europe/Berlin")
# 07:08:09.012345 UTC is 08:08:09 in Berlin (winter time).
WHEN = datetime(2026, 1, 2, 7, 8, 9, 12345, tzinfo=UTC)
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789¹²³"
}


def frame(**overrides: object) -> dict[str, object]:
    fields = template_fields(
        rule="ng_gate",
        trigger="plc",
        camera="line3_cam2",
        line="Line 3",
        site="plant",
        vendor="hikvision",
        channel=2,
        seq=1,
        burst=3,
        event_id="20260102T070809.012Z-0001000001",
        when=WHEN,
        tz=BERLIN,
        values={"temp": 37.94, "station": "S1", "part.id": "A-17"},
    )
    return {**fields, **overrides}


def render(template: str, **overrides: object) -> str:
    return str(parse_template(template).render(frame(**overrides)))


# --------------------------------------------------------------------------- rendering


def test_the_default_template_renders_a_readable_relative_path() -> None:
    path = parse_template(DEFAULT_FILENAME).render(frame())
    assert path == PurePosixPath("Line 3/2026-01-02/ng_gate_line3_cam2_080809_1.jpg")
    assert not path.is_absolute()


def test_every_builtin_field_renders() -> None:
    template = "/".join(f"{{{name}}}" for name in BUILTIN_FIELDS) + ".jpg"
    assert render(template) == (
        "ng_gate/plc/line3_cam2/Line 3/plant/hikvision/2/1/3/0/20260102T070809.012Z-0001000001/"
        "2026-01-02/080809/20260102_080809.jpg"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{time:%H%M%S_%f}.jpg", "080809_012345.jpg"),
        ("{date:%Y%m%d}.jpg", "20260102.jpg"),
        ("{date:%y-%j %a}.jpg", "26-002 Fri.jpg"),
        ("{datetime:%Y-%m-%dT%H%M}.jpg", "2026-01-02T0808.jpg"),
        ("{date:%Y/%m/%d}/{time}.jpg", "2026/01/02/080809.jpg"),
        ("{time:%H:%M:%S}.jpg", "08_08_09.jpg"),
        ("{time:100%%}.jpg", "100%.jpg"),
        ("{time:%z}.jpg", "+0100.jpg"),
        ("{date:%x}.jpg", "01_02_26.jpg"),
        ("{datetime:%c}.jpg", "Fri Jan  2 08_08_09 2026.jpg"),
    ],
)
def test_time_fields_take_strftime_formats_in_the_service_time_zone(
    template: str, expected: str
) -> None:
    assert render(template) == expected


def test_a_time_format_with_slashes_makes_folders_of_the_template() -> None:
    template = parse_template("{date:%Y/%m}/{rule}.jpg")
    assert template.render(frame()).parts == ("2026", "01", "ng_gate.jpg")


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("{temp:.1f}.jpg", 37.94, "37.9.jpg"),
        ("{temp:.1f}.jpg", "37.94", "37.9.jpg"),
        ("{temp:.1f}.jpg", " 37.94\r\n", "37.9.jpg"),
        ("{temp:.1f}.jpg", "37,94", "37.9.jpg"),
        ("{temp:.1f}.jpg", "hot", "hot.jpg"),
        ("{temp:.1f}.jpg", True, "true.jpg"),
        ("{temp:.1f}.jpg", None, "unknown.jpg"),
        ("{temp:04d}.jpg", 7, "0007.jpg"),
        ("{temp:04d}.jpg", "7", "0007.jpg"),
        ("{temp:04d}.jpg", 7.0, "0007.jpg"),
        ("{temp:04d}.jpg", 7.5, "7.5.jpg"),
        ("{temp:+.2e}.jpg", 1234, "+1.23e+03.jpg"),
        ("{temp:,}.jpg", 1234567, "1,234,567.jpg"),
        ("{temp:x}.jpg", 255, "ff.jpg"),
        ("{temp:>5}.jpg", "ab", "ab.jpg"),  # leading spaces of a name are removed
        ("x{temp:>5}.jpg", "ab", "x   ab.jpg"),
        ("{temp:.3}.jpg", "abcdef", "abc.jpg"),
        ("{temp:=>6}.jpg", "ab", "====ab.jpg"),
        ("{temp:/>6}.jpg", "ab", "____ab.jpg"),
        ("{temp:.1f}.jpg", float("inf"), "inf.jpg"),
    ],
)
def test_number_formats_apply_to_numbers_and_numeric_text_and_leave_other_text(
    template: str, value: object, expected: str
) -> None:
    assert render(template, temp=value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (17, "17"),
        (-2.5, "-2.5"),
        ("S1", "S1"),
        (None, MISSING),
        ("", "_"),
    ],
)
def test_values_render_as_text(value: object, expected: str) -> None:
    assert render("{station}.jpg", station=value) == f"{expected}.jpg"


#: A lone value shortened to the file name's room: 246 bytes (255 - ".jpg" - room for "_9999").
SHORTENED = re.compile(r"9{237}~[0-9a-f]{8}\.jpg")


def test_huge_numbers_in_text_render_without_error() -> None:
    assert SHORTENED.fullmatch(render("{temp:04d}.jpg", temp="9" * 5000))
    assert SHORTENED.fullmatch(render("{temp:.1f}.jpg", temp="9" * 400))  # too big for a float
    assert render("{temp:.1f}.jpg", temp="9" * 400 + ".5") == "inf.jpg"


def test_huge_widths_are_refused_before_anything_is_formatted() -> None:
    # Refused by the parser, at load: no value is ever formatted with such a width.
    for spec in ("9999999999", ".9999999999f", "0999999999d"):
        with pytest.raises(TemplateError, match="larger than"):
            parse_template(f"{{temp:{spec}}}.jpg")


def test_missing_fields_render_as_unknown() -> None:
    template = parse_template("{line}/{date}/{rule}_{part.id}_{nothing}.jpg")
    assert str(template.render({})) == "unknown/unknown/unknown_unknown_unknown.jpg"
    assert MISSING == "unknown"


def test_dotted_fields_read_flattened_json_values_and_braces_can_be_literal() -> None:
    assert render("{{{part.id}}}_{station}.jpg") == "{A-17}_S1.jpg"


def test_builtins_hide_trigger_values_of_the_same_name() -> None:
    fields = template_fields(
        rule="r", trigger="t", camera="c", line="Line 3", site="s", vendor="v", channel=1, seq=1,
        burst=1, event_id="e", when=WHEN, tz=UTC, values={"line": "raw text", "camera": "x"},
    )  # fmt: skip
    assert parse_template("{line}_{camera}.jpg").render(fields) == PurePosixPath("Line 3_c.jpg")


def test_template_fields_shows_the_time_in_the_given_zone() -> None:
    fields = template_fields(
        rule="r", trigger="t", camera="c", line="l", site="s", vendor="v", channel=1, seq=1,
        burst=1, event_id="e", when=WHEN, tz=timezone(timedelta(hours=-5)),
    )  # fmt: skip
    assert parse_template("{datetime}.jpg").render(fields) == PurePosixPath("20260102_020809.jpg")


# --------------------------------------------------------------------------- sanitizing


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),
        ("..", "_"),
        (".", "_"),
        ("/", "_"),
        ("a\\b", "a_b"),
        ("nul\x00byte", "nul_byte"),
        ("tab\there\nnewline\x7f\x85", "tab_here_newline__"),
        (".hidden", "hidden"),
        ("  spaced  ", "spaced"),
        ("trailing...", "trailing"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        ("CON", "_CON"),
        ("con", "_con"),
        ("Com1", "_Com1"),
        ("LPT9.txt", "_LPT9.txt"),
        ("NUL .tar", "_NUL .tar"),
        ("CONSOLE", "CONSOLE"),
        ("COM10", "COM10"),
        ("gate\u202egpj.exe", "gate_gpj.exe"),
        ("zero\u200bwidth\ufeff", "zero_width_"),
        ("line\u2028sep", "line_sep"),
        ("e\u0301", "\u00e9"),
        ("Линия 3", "Линия 3"),
        ("カメラ😀", "カメラ😀"),
        ("\ud800lone", "_lone"),
        ("", "_"),
    ],
)
def test_a_value_never_splits_a_folder_and_gives_a_valid_visible_name(
    value: str, expected: str
) -> None:
    path = parse_template("{line}/{rule}.jpg").render(frame(line=value, rule=value))
    assert path.parts == (expected, f"{expected}.jpg")


def test_a_long_value_is_shortened_with_a_hash_and_keeps_the_extension() -> None:
    name = parse_template("{rule}.jpg").render(frame(rule="x" * 300)).name
    assert re.fullmatch(r"x{237}~[0-9a-f]{8}\.jpg", name)
    emoji = parse_template("{rule}.jpeg").render(frame(rule="😀" * 100)).name
    assert re.fullmatch(r"(😀){59}~[0-9a-f]{8}\.jpeg", emoji)
    assert len(emoji.encode()) <= MAX_COMPONENT_BYTES - len("_9999")
    folder = parse_template("{rule}/x.jpg").render(frame(rule="é" * 200)).parts[0]
    assert re.fullmatch(r"é{123}~[0-9a-f]{8}", folder)


def test_a_long_value_never_costs_the_template_its_own_text_camera_or_sequence() -> None:
    """The issue's case: a 10 kB payload value in front of `_{camera}_{id}_{seq}`."""
    template = parse_template("{line}/{note}_{camera}_{id}_{seq}.jpg")
    names = {
        template.render(frame(note=note, camera=camera, id=4711, seq=seq)).name
        for note in ("a" * 10_000, "a" * 9_999 + "b")
        for camera in ("cam_a", "cam_b")
        for seq in (1, 2)
    }
    assert len(names) == 8  # distinct values stay distinct, by their hash
    for name in names:
        assert re.fullmatch(r"a+~[0-9a-f]{8}_cam_[ab]_4711_[12]\.jpg", name), name
        assert len(name.encode()) <= MAX_COMPONENT_BYTES - len("_9999")
    # The storage's numbering of a taken name then never cuts it either.
    numbered = with_suffix_counter(PurePosixPath(sorted(names)[0]), 9999).name
    assert numbered.endswith("_cam_a_4711_1_9999.jpg")


def test_two_long_values_share_the_room_and_short_ones_stay_whole() -> None:
    name = parse_template("{a}-{b}-{c}.jpg").render(frame(a="p" * 400, b="q" * 400, c="short")).name
    a, b, c = name.removesuffix(".jpg").split("-")
    assert c == "short" and len(a) + len(b) == 246 - len("--short") and abs(len(a) - len(b)) <= 1
    assert a.startswith("ppp") and b.startswith("qqq") and "~" in a and "~" in b


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("{rule}/{camera}.jpg", "latest", "_latest/line3_cam2.jpg"),
        ("{rule}/{camera}.jpg", "Latest", "_Latest/line3_cam2.jpg"),  # latest/ on exFAT
        ("{rule}/{camera}.jpg", "journal.sqlite3-wal", "_journal.sqlite3-wal/line3_cam2.jpg"),
        ("{rule}.jpg", "journal.sqlite3-wal", "_journal.sqlite3-wal.jpg"),
        ("{rule}.jpg", "latest", "latest.jpg"),  # a file beside latest/ is not latest/
        ("x/{rule}/{camera}.jpg", "latest", "x/latest/line3_cam2.jpg"),  # only the top counts
    ],
)
def test_a_value_naming_what_the_storage_keeps_at_its_root_is_renamed_and_saved(
    tmp_path: Path, template: str, value: str, expected: str
) -> None:
    """A station called "latest" must not lose its pictures as an unsafe path."""
    relative = parse_template(template).render(frame(rule=value))
    assert relative.as_posix() == expected
    storage = Storage(StorageConfig(root=tmp_path, fsync=False))
    try:
        assert (
            storage.save(relative, b"\xff\xd8 picture \xff\xd9", "line3_cam2").relative == relative
        )
    finally:
        storage.close()


def test_a_reserved_name_stays_reserved_free_after_cutting() -> None:
    name = parse_template("{rule}.jpg").render(frame(rule="CON" + "x" * 300)).name
    assert name.startswith("CONxxx") and len(name.encode()) <= MAX_COMPONENT_BYTES
    assert parse_template("{rule}.jpg").render(frame(rule="aux")).name == "_aux.jpg"


def test_a_huge_value_is_cut_without_processing_all_of_it() -> None:
    huge = "é\x00" * 8_000_000  # 16 M characters (64 MB as Python keeps them)
    tracemalloc.start()
    try:
        name = parse_template("{rule}.jpg").render(frame(rule=huge)).name
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert re.fullmatch(r"(é_){79}~[0-9a-f]{8}\.jpg", name)  # 246 bytes of UTF-8 and the extension
    # Sanitizing all of it would copy it at least once (tens of MB); cutting first costs KB.
    assert peak < 1_000_000, peak


def test_the_whole_path_is_bounded() -> None:
    template = parse_template("/".join(["{rule}"] * 15) + "/{camera}.jpg")
    path = template.render(frame(rule="r" * 400, camera="c" * 400))
    assert len(str(path).encode()) <= MAX_PATH_BYTES
    assert len(path.parts) == 16
    assert path.name.endswith(".jpg") and path.name.startswith("c")


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("template", "position", "message"),
    [
        ("", 0, "the filename template is empty"),
        ("/data/{rule}.jpg", 0, "relative to [storage].root; remove the leading '/'"),
        (
            "a/../{rule}.jpg",
            2,
            "'..' at column 3 is not allowed: snapshots stay under the storage root",
        ),
        ("./{rule}.jpg", 0, "'.' at column 1 is not allowed"),
        ("{rule}.png", 10, "a template must end in '.jpg' or '.jpeg'"),
        ("{rule}", 6, "a template must end in '.jpg' or '.jpeg'"),
        ("a//{rule}.jpg", 2, "empty folder name ('//') at column 3"),
        ("{rule}/", 7, "empty file name after the last '/' at column 8"),
        ("{rule", 0, "'{' at column 1 is never closed"),
        ("{ru{le}.jpg", 0, "'{' at column 1 is never closed"),
        ("{rule}}.jpg", 6, "single '}' at column 7; write '}}' for a literal brace"),
        ("x_{}.jpg", 2, "empty field '{}' at column 3"),
        ("{  }.jpg", 0, "empty field"),
        ("{rule!r}.jpg", 0, "conversions such as '!r' are not supported"),
        ("{1st}.jpg", 1, "'1st' at column 2 is not a field name"),
        ("{part..id}.jpg", 1, "is not a field name"),
        ("{temp:}.jpg", 0, "empty format after ':'"),
        (
            "{temp:zz}.jpg",
            6,
            "bad format 'zz' for {temp} at column 7; use a number format such as .1f or 04d",
        ),
        ("{temp:.1q}.jpg", 6, "bad format '.1q'"),
        ("{temp:,s}.jpg", 6, "bad format ',s'"),
        ("{temp:9999999999}.jpg", 6, "width in '9999999999' at column 7 is larger than 255"),
        ("{temp:.99f}.jpg", 6, "precision in '.99f' at column 7 is larger than 20"),
        ("{time:%H%Q}.jpg", 8, "unknown time code '%Q' at column 9"),
        ("{time:%H%}.jpg", 8, "unknown time code '%'"),
        ("{date:%Y//%m}.jpg", 9, "empty folder name in the format of {date}"),
        (".{rule}.jpg", 0, "may not start with '.' (hidden file)"),
        ("{rule}/.jpg", 7, "may not start with '.'"),
        (" {rule}.jpg", 0, "or a space"),
        ("{line} /{rule}.jpg", 6, "a folder name may not end with '.' or a space at column 7"),
        ("{line}./{rule}.jpg", 6, "may not end with '.'"),
        ("a\\{rule}.jpg", 1, "'\\' at column 2: use '/' to separate folders"),
        (
            "a:{rule}.jpg",
            1,
            "':' at column 2 is not allowed in file names on USB sticks and Windows shares",
        ),
        ("a\x00{rule}.jpg", 1, "'\\x00' at column 2 is not allowed"),
        ("a\u202e{rule}.jpg", 1, "is not allowed"),
        ("CON/{rule}.jpg", 0, "'CON' at column 1 is a reserved name on Windows shares"),
        ("{rule}/nul.jpg", 7, "reserved name"),
        ("x" * 300 + ".jpg", 0, "longer than 255 bytes"),
        ("a/" * 16 + "{rule}.jpg", 32, "too many folder levels (at most 15)"),
        ("{rule}" * 200 + ".jpg", 1024, "too long (1204 characters, at most 1024)"),
    ],
)
def test_errors_say_where_and_what_to_write(template: str, position: int, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(template)
    assert message in str(caught.value)
    assert caught.value.position == position
    assert caught.value.text == template
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "template",
    [
        "{rule}.JPG",
        "{rule}.jpeg",
        "snapshot.jpg",
        "{ rule }.jpg",
        "{{x}}/{rule}.jpg",
        "a b/{rule} ({seq}).jpg",
        "{time:%H%M}{temp:.1f}.jpg",
    ],
)
def test_valid_templates_parse(template: str) -> None:
    assert parse_template(template).render(frame()).suffix.lower() in (".jpg", ".jpeg")


def test_fields_lists_the_names_used_and_value_fields_the_trigger_ones() -> None:
    template = parse_template("{line}/{date:%Y/%m}/{rule}_{temp:.1f}_{part.id}.jpg")
    assert template.fields == {"line", "date", "rule", "temp", "part.id"}
    assert template.value_fields == {"temp", "part.id"}
    assert str(template) == "{line}/{date:%Y/%m}/{rule}_{temp:.1f}_{part.id}.jpg"
    assert template == parse_template(str(template))
    assert "Template(" in repr(template)


def test_check_fields_reports_unknown_fields_with_a_suggestion() -> None:
    template = parse_template("{line}/{rule}_{tmp:.1f}_{zzz}.jpg")
    errors = template.check_fields(["temp", "station"])
    assert [str(error) for error in errors] == [
        "unknown field '{tmp}' at column 15 (did you mean '{temp}'?)",
        "unknown field '{zzz}' at column 25; use a built-in field or a value the triggers provide",
    ]
    assert [error.position for error in errors] == [14, 24]
    assert template.check_fields(["tmp", "zzz"]) == []


def test_the_documented_example_templates_render_the_documented_paths() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "rules-language.md").read_text(encoding="utf-8")
    examples = re.findall(r'^filename = "([^"]+)".*\n# (.+)$', docs, flags=re.MULTILINE)
    assert len(examples) == 3
    when = datetime(2026, 11, 25, 13, 30, 5, tzinfo=UTC)
    values = {"temp": "37.94", "station": "S1", "part.id": "A-1734"}
    for template, expected in examples:
        fields = template_fields(
            rule="ng_part", trigger="plc", camera="line3_cam2", line="Line 3", site="plant",
            vendor="hikvision", channel=1, seq=1, burst=3, event_id="e", when=when, tz=BERLIN,
            values=values,
        )  # fmt: skip
        if template.startswith("fever"):
            fields["camera"] = "entrance_cam"
        assert str(parse_template(template).render(fields)) == expected


def test_builtin_fields_name_the_time_fields_and_the_docs_carry_their_table() -> None:
    assert set(TIME_FIELDS) <= set(BUILTIN_FIELDS)
    docs = (Path(__file__).parents[1] / "docs" / "rules-language.md").read_text(encoding="utf-8")
    assert builtin_fields_table() in docs


# --------------------------------------------------------------------------- unique names


def test_with_suffix_counter_numbers_a_name_and_keeps_folder_and_extension() -> None:
    path = PurePosixPath("Line 3/2026-01-02/ng_gate_cam_1.jpg")
    assert with_suffix_counter(path, 1) == path
    assert with_suffix_counter(path, 2) == PurePosixPath("Line 3/2026-01-02/ng_gate_cam_1_2.jpg")
    assert with_suffix_counter(path, 13).name == "ng_gate_cam_1_13.jpg"
    assert with_suffix_counter(PurePosixPath("a.b.jpeg"), 2).name == "a.b_2.jpeg"


def test_with_suffix_counter_stays_within_the_name_limit() -> None:
    longest = parse_template("{rule}.jpg").render(frame(rule="é" * 300))
    numbered = with_suffix_counter(longest, 1000)
    assert numbered.name.endswith("_1000.jpg")
    assert len(numbered.name.encode()) <= MAX_COMPONENT_BYTES


def test_with_suffix_counter_rejects_numbers_below_one() -> None:
    with pytest.raises(ValueError, match="n must be 1 or more"):
        with_suffix_counter(PurePosixPath("x.jpg"), 0)


# --------------------------------------------------------------------------- properties

HOSTILE = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from([*"./\\\x00\n\r\t :*?\"<>|~$ .", "..", "\u202e", "\u200b", "\ufeff", "😀", "\u0301"]),
        max_size=40,
    ).map("".join),
    st.sampled_from(
        [
            "../", "..", ".", "/", "\\", "\x00", "../../../../etc/passwd", "..\\..\\windows", "CON", "nul.txt",
            "COM1", "lpt9", "CONIN$", " ", "...", ". .", "x" * 300, "😀" * 80, "\u202egpj.exe", "e\u0301" * 100,
            "\ud800", "\udfff.", "/" * 300, "\n", "a/../../b",
        ]
    ),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
)  # fmt: skip
TEMPLATES = st.sampled_from(
    [
        DEFAULT_FILENAME,
        "{station}.jpg",
        "{station}/{part.id}.jpeg",
        "{date:%x}/{time:%c}_{station}.jpg",
        "{station}{part.id}.jpg",
        "x{station}/{part.id}_{seq}.JPG",
        "{station:.1f}/{part.id:>20}_{temp:04d}.jpg",
        "{line}/{station}/{rule}/{camera}/{part.id}/{station}{station}{station}{station}.jpg",
    ]
)


def assert_safe_name(name: str) -> None:
    assert name not in ("", ".", "..")
    assert not name.startswith((".", " "))
    assert not name.endswith((".", " "))
    assert len(name.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert unicodedata.is_normalized("NFC", name)
    forbidden = set('/\\<>:"|?*')
    for char in name:
        assert char not in forbidden
        assert unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp"), repr(char)
    assert name.split(".", 1)[0].rstrip(" ").upper() not in WINDOWS_RESERVED
    # A maintained validator agrees (characters, length, leading and trailing dots and spaces).
    # Reserved names are ours above: pathvalidate adds CLOCK$, which only DOS reserved.
    validate_filename(name, platform="universal", fs_encoding="utf-8", check_reserved=False)


@given(TEMPLATES, HOSTILE, HOSTILE, HOSTILE, HOSTILE)
@example(DEFAULT_FILENAME, "..", "../..", "/etc", "\x00")
@example("{station}/{part.id}.jpeg", ".", "..", None, None)
@example("{station}{part.id}.jpg", None, "e", "\u0301", None)
@pytest.mark.timeout(300)  # writes every example's file: slow on a loaded machine
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_value_escapes_the_root_or_makes_an_invalid_or_hidden_name(
    tmp_path: Path, template: str, line: object, station: object, part: object, rule: object
) -> None:
    parsed = parse_template(template)
    rendered = parsed.render(frame(line=line, station=station, rule=rule, **{"part.id": part}))
    root = tmp_path.resolve()
    target = (root / rendered).resolve()
    assert target.is_relative_to(root) and target != root
    assert not rendered.is_absolute()
    assert len(rendered.parts) == template.count("/") + 1
    for name in rendered.parts:
        assert_safe_name(name)
    assert rendered.suffix == template[template.rindex(".") :]
    assert len(str(rendered).encode()) <= MAX_PATH_BYTES
    # The file system agrees: the file can be written where we said, and nowhere else.
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\xff\xd8\xff\xd9")
    assert target.is_file() and target.parent.resolve().is_relative_to(root)


@given(
    st.lists(
        st.sampled_from(
            [
                *"{}/:.%!\\ x",
                "{rule}",
                "{time:%H}",
                "{temp:.1f}",
                "{date:%Y/%m}",
                ".jpg",
                "..",
                "{{",
                "}}",
                "\x00",
                "é",
            ]
        ),
        max_size=25,
    ).map("".join)
)
@settings(max_examples=800, deadline=None)
def test_parsing_random_text_raises_nothing_but_template_error(text: str) -> None:
    try:
        template = parse_template(text)
    except TemplateError as error:
        assert 0 <= error.position <= len(text)
        return
    rendered = template.render(frame())
    assert rendered.suffix.lower() in (".jpg", ".jpeg")
    for name in rendered.parts:
        assert_safe_name(name)
