"""Where Python's format language reads more than a field of ours holds, the template is refused as before."""

from __future__ import annotations

import pytest

from capture.template import TemplateError, parse_template


@pytest.mark.parametrize(
    ("template", "position", "message"),
    [
        # Formatter reads `a[:]` as an index holding ':'; our fields have no indexes.
        ("{a[:]}.jpg", 1, "'a[' at column 2 is not a field name"),
        ("x/{a[0]:>3}.jpg", 3, "'a[0]' at column 4 is not a field name"),
        # Formatter reports the conversion '!\0' as none at all.
        ("{a!\x00}.jpg", 0, "conversions such as '!r' are not supported"),
        # Formatter reads a nested field in the format; we never did.
        ("{temp:{width}}.jpg", 0, "'{' at column 1 is never closed"),
        # Formatter raises a bare ValueError; the column comes from the source.
        ("a/{rule}}x.jpg", 8, "single '}' at column 9"),
        ("a/b{rule.jpg", 3, "'{' at column 4 is never closed"),
        ("a\\{rule.jpg", 1, "'\\' at column 2"),  # the literal text before the brace first
        ("{rule!}.jpg", 0, "conversions such as '!r' are not supported"),
        ("{{{rule}}}/{x", 11, "'{' at column 12 is never closed"),
    ],
)
def test_what_format_strings_allow_and_templates_do_not_is_refused_where_it_is(
    template: str, position: int, message: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(template)
    assert message in str(caught.value)
    assert caught.value.position == position


def test_doubled_braces_and_conversion_free_fields_keep_their_columns() -> None:
    template = parse_template("{{x}}/{rule}_{zzz:>4}.jpg")
    [error] = template.check_fields([])
    assert error.position == len("{{x}}/{rule}_")
    assert str(template.render({"rule": "r", "zzz": "ab"})) == "{x}/r_  ab.jpg"
