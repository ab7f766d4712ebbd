"""`capture check` on modbus and opcua triggers: their options get file:line like every trigger's."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from capture.config.loader import parse_rules
from capture.config.schema import OpcuaTrigger
from tests.config.conftest import line_of
from tests.config.test_loader import MINIMAL, problems_of

MODBUS = """
[triggers.io]
type = "modbus"
host = "10.0.0.30"
table = "holding_registers"
address = 100
min_active_ms = 40
"""

OPCUA = """
[triggers.plc]
type = "opcua"
endpoint = "opc.tcp://10.0.0.20:4840"
nodes = ["ns=3;s=Line4.PartPresent"]
security = "sign"
user = "capture"
password_env = "OPCUA_PW"
"""


@pytest.mark.parametrize(
    ("table", "option", "expected"),
    [
        (
            "holding_registers",
            "min_active_ms = 40",
            "min_active_ms: only for bits (table = 'discrete_inputs' or 'coils'); registers fire "
            "on every change, filter them with a rule's condition",
        ),
        (
            "coils",
            'data_type = "float32"',
            "data_type: only for registers (table = 'holding_registers' or 'input_registers'); "
            "bits are 0 or 1",
        ),
        (
            "holding_registers",
            'data_type = "float64"\ncount = 32',
            "count 32 x 4 registers per float64 passes 125, the most one Modbus read returns; "
            "split it into two triggers",
        ),
    ],
    ids=["bit-option-on-registers", "register-option-on-bits", "more-than-one-read"],
)
def test_options_that_do_not_fit_the_table_are_an_error_at_the_trigger(
    table: str, option: str, expected: str
) -> None:
    text = MINIMAL + MODBUS.replace('"holding_registers"', f'"{table}"').replace(
        "min_active_ms = 40", option
    )
    assert problems_of(text) == [
        f"rules.toml:{line_of(text, '[triggers.io]')}: triggers.io: {expected}"
    ]


def test_an_unknown_data_type_names_the_choices_at_its_line() -> None:
    text = MINIMAL + MODBUS.replace("min_active_ms = 40", 'data_type = "real"')
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith(f"rules.toml:{line_of(text, 'data_type')}: triggers.io.data_type")
    assert "'float32'" in problems[0]


def test_security_without_certificates_and_an_unset_password_variable_are_reported() -> None:
    text = MINIMAL + OPCUA
    header = line_of(text, "[triggers.plc]")
    problems = problems_of(text)
    assert problems == [
        f"rules.toml:{header}: triggers.plc: security = 'sign' "
        "needs certificate_file and private_key_file",
    ]


def test_the_opcua_password_is_read_from_the_environment_like_a_camera_password() -> None:
    text = MINIMAL + OPCUA.replace('security = "sign"\n', "")
    rules = parse_rules(text, "rules.toml", {"OPCUA_PW": "s3cret-plc"}).rules
    trigger = rules.triggers["plc"]
    assert isinstance(trigger, OpcuaTrigger)
    assert trigger.password == SecretStr("s3cret-plc")
    assert "s3cret-plc" in rules.secret_values()
    errors = [problem for problem in problems_of(text) if ": warning: " not in problem]
    assert errors == [
        f"rules.toml:{line_of(text, 'OPCUA_PW')}: triggers.plc.password_env: "
        "environment variable 'OPCUA_PW' is not set",
    ]


def test_a_node_id_that_is_not_one_is_an_error_at_its_line() -> None:
    text = MINIMAL + OPCUA.replace('"ns=3;s=Line4.PartPresent"', '"Line4.PartPresent"')
    [problem] = problems_of(text.replace('security = "sign"\n', ""), {"OPCUA_PW": "x"})
    assert problem == (
        f"rules.toml:{line_of(text, 'Line4.PartPresent')}: triggers.plc.nodes: node id "
        "'Line4.PartPresent': write ns=N;s=Name or ns=N;i=1234 (also g=, b=), e.g. "
        "'ns=2;s=Line1.Gate', as the PLC tool or an OPC UA browser shows it"
    )


def test_a_password_in_the_endpoint_is_refused_without_quoting_it() -> None:
    text = MINIMAL + OPCUA.replace("opc.tcp://10.0.0.20", "opc.tcp://capture:Plc-Pw-77@10.0.0.20")
    [problem] = problems_of(text.replace('security = "sign"\n', ""), {"OPCUA_PW": "x"})
    assert problem == (
        f"rules.toml:{line_of(text, 'endpoint')}: triggers.plc.endpoint: no user or password "
        "in the endpoint: use user and password_env"
    )


def test_check_warns_of_a_missing_extra_and_missing_certificate_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util  # noqa: PLC0415

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "asyncua" else real(name, *a)
    )
    key = tmp_path / "client.pem"
    key.write_text("not checked here", encoding="utf-8")
    missing = tmp_path / "client.der"
    text = MINIMAL.replace('when = "gate"', 'when = ["gate", "plc"]') + OPCUA.replace(
        'security = "sign"\n',
        f'security = "sign"\ncertificate_file = "{missing}"\nprivate_key_file = "{key}"\n',
    )
    loaded = parse_rules(text, "rules.toml", {"OPCUA_PW": "x"})
    opcua_type = line_of(text, "[triggers.plc]") + 1
    assert [str(problem) for problem in loaded.warnings] == [
        f"rules.toml:{opcua_type}: warning: triggers.plc.type: the opcua "
        "trigger needs asyncua, which is not installed: pip install 'event-capture[opcua]' "
        "(on a Pi: deploy/install.sh --extras opcua)",
        f"rules.toml:{line_of(text, 'client.der')}: warning: triggers.plc.certificate_file: "
        f"no file '{missing}' here; the trigger cannot start without it",
    ]
