"""Log records never carry a configured secret, whoever wrote them."""

from __future__ import annotations

import logging

import pytest

from capture.config.loader import parse_rules
from capture.logs import SecretScrubber

RULES = """
[mqtt]
username = "svc"
password = "Mqtt-Secret-1"

[web]
token = "Web-Token-2"

[cameras.cam]
vendor = "xrc"
host = "10.0.0.9"
user = "admin"
password = "p@ss word&3"
session = "Session-Id-4"
"""


def test_rule_file_lists_every_secret() -> None:
    rules = parse_rules(RULES, "rules.toml", {}, require_rules=False).rules
    assert sorted(rules.secret_values()) == sorted(
        ["Mqtt-Secret-1", "Web-Token-2", "p@ss word&3", "Session-Id-4"]
    )


@pytest.mark.secret_logged_on_purpose("logs secrets raw to prove the scrubber masks them")
def test_scrubber_masks_secrets_in_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scrubber = SecretScrubber(["p@ss word&3", "Web-Token-2"])
    logger = logging.getLogger("test.scrub")
    caplog.handler.addFilter(scrubber)
    try:
        with caplog.at_level(logging.INFO, logger="test.scrub"):
            logger.info("GET http://cam/snapshot.cgi?pwd=%s", "p%40ss%20word%263")
            logger.info("token %s in clear", "Web-Token-2")
            try:
                raise RuntimeError("device said p@ss word&3")
            except RuntimeError:
                logger.exception("failure")
    finally:
        caplog.handler.removeFilter(scrubber)
    text = caplog.text
    assert (
        "p@ss word&3" not in text and "p%40ss%20word%263" not in text and "Web-Token-2" not in text
    )
    assert text.count("***") >= 3
