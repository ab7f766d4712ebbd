"""Secrets never leave through URLs, excerpts or library log lines."""

from __future__ import annotations

import logging

import pytest

from capture.cameras.redact import EXCERPT_WINDOW, RedactingFilter, excerpt, redact_url, scrub


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h/snapshot.cgi?user=admin&pwd=x%23y", "http://h/snapshot.cgi?user=admin&pwd=***"),
        ("http://admin:pw@h:81/a.jpg", "http://h:81/a.jpg"),
        (
            "http://h/cgi?cmd=Snap&password=p&token=t&channel=0",
            "http://h/cgi?cmd=Snap&password=***&token=***&channel=0",
        ),
        ("http://h/snapshot.cgi?session=123456", "http://h/snapshot.cgi?session=***"),
    ],
)
def test_secret_query_values_and_user_info_are_masked(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_custom_parameter_and_known_secret_values_are_masked() -> None:
    assert (
        redact_url("http://h/s?u=a&p=b&x=hunter2", secret_params=["p"], secrets=["hunter2"])
        == "http://h/s?u=a&p=***&x=***"
    )


def test_excerpt_is_short_printable_and_scrubbed() -> None:
    body = b"<html>\r\n\t<p>login hunter2 failed</p>\x00\x01" + b"x" * 500
    text = excerpt(body, ["hunter2"])
    assert text.startswith("<html> <p>login *** failed</p>")
    assert len(text) <= 160 and text.endswith("…")


def test_scrub_also_masks_the_url_encoded_form() -> None:
    assert scrub("pwd=p%40ss and p@ss", ["p@ss"]) == "pwd=*** and ***"


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        ("<p>login admin:Käse#2024 refused</p>".encode(), "Käse#2024"),  # not ASCII
        (b" " * 630 + b"pwd=SuperSecret99", "SuperSecret99"),  # past the old cut, after tidying
        (b"<p>password a&amp;b&lt;c wrong</p>", "a&b<c"),  # echoed HTML-escaped
        (b" " * (EXCERPT_WINDOW - 4) + b"SecretX, more", "SecretX"),  # the window cuts it
    ],
    ids=["umlaut", "far", "escaped", "cut"],
)
def test_an_excerpt_shows_no_part_of_a_secret_a_device_echoes(body: bytes, secret: str) -> None:
    text = excerpt(body, [secret])
    assert secret not in text and secret[:4] not in text and "***" in text


def test_log_filter_masks_urls_in_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    log_filter = RedactingFilter()
    log_filter.add_params(["pw"])
    logger.addFilter(log_filter)
    try:
        with caplog.at_level(logging.INFO, logger="test.redact"):
            logger.info("HTTP Request: %s %s", "GET", "http://h/x?user=a&pwd=s1&pw=s2")
    finally:
        logger.removeFilter(log_filter)
    assert caplog.records[0].getMessage() == "HTTP Request: GET http://h/x?user=a&pwd=***&pw=***"
