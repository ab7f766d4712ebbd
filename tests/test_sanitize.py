"""Any text becomes a valid, visible file name; a maintained validator (pathvalidate) agrees."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pathvalidate import validate_filename

from capture.sanitize import MAX_COMPONENT_BYTES, WINDOWS_RESERVED, clean, finish, is_reserved


@given(st.text(max_size=400), st.integers(min_value=16, max_value=MAX_COMPONENT_BYTES))
@example("..", MAX_COMPONENT_BYTES)
@example(".hidden ", MAX_COMPONENT_BYTES)
@example("CON.", MAX_COMPONENT_BYTES)
@example("nul .tar", MAX_COMPONENT_BYTES)
@example("gate\u202egpj.exe", MAX_COMPONENT_BYTES)
@example("\ud800", MAX_COMPONENT_BYTES)
@example("é" * 300, 16)
@example("\xa0", 16)  # CI found it: a name of one no-break space, invisible
@example("Line 3\u3000", 16)
@settings(deadline=None)
def test_any_text_finishes_as_a_valid_visible_name(text: str, limit: int) -> None:
    name = finish(clean(text), limit)
    assert name and name not in (".", "..")
    assert not name.startswith(".") and not name.endswith(".")
    assert not name[0].isspace() and not name[-1].isspace()  # Unicode's spaces too
    assert len(name.encode("utf-8")) <= limit
    assert unicodedata.is_normalized("NFC", name)
    assert not any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in name)
    assert not is_reserved(name)
    # CLOCK$ is reserved only by DOS; our list is Windows' (pathvalidate's adds it).
    validate_filename(name, platform="universal", fs_encoding="utf-8", check_reserved=False)


@pytest.mark.parametrize("name", sorted(WINDOWS_RESERVED))
def test_reserved_names_are_prefixed_in_any_case_and_with_an_extension(name: str) -> None:
    assert finish(name) == f"_{name}"
    assert finish(f"{name.lower()} .jpg") == f"_{name.lower()} .jpg"
    assert finish(f"{name}x") == f"{name}x"
