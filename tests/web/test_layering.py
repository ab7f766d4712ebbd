"""The web and the service do not import each other: the web sees the service through ServiceView."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import capture

PACKAGE = Path(capture.__file__).parent
WEB_LIBRARIES = ("fastapi", "starlette", "uvicorn")


def imported_modules(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module a file imports (relative imports resolved), or only those at its top level.

    `if TYPE_CHECKING:` blocks count as imports: a cycle there still ties the two together.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # the bodies of top-level `if` blocks (TYPE_CHECKING) are top level too
        nodes = [
            n
            for node in nodes
            for n in ([node, *node.body] if isinstance(node, ast.If) else [node])
        ]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_no_web_module_imports_the_service() -> None:
    offenders = {
        path.name: sorted(
            name for name in imported_modules(path) if name.startswith("capture.service")
        )
        for path in sorted((PACKAGE / "web").glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_service_imports_the_web_only_when_it_starts_the_dashboard() -> None:
    top = imported_modules(PACKAGE / "service.py", top_level_only=True)
    anywhere = imported_modules(PACKAGE / "service.py")
    assert "capture.web.server" in anywhere, "the service does start the web"
    runtime = {name for name in top if name.startswith("capture.web")} - {
        "capture.web.server",  # under TYPE_CHECKING, for the attribute's annotation only
        "capture.web.server.WebServer",
    }
    assert runtime == set()


_PROBE = """
import json, sys
import capture.web.server
print(json.dumps(sorted(m for m in sys.modules if m == "capture.service" or m == "capture.engine")))
"""


def test_importing_the_web_alone_loads_neither_the_service_nor_the_engine() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == []


def test_the_command_line_help_loads_no_web_library() -> None:
    probe = (
        "import sys\nfrom capture.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WEB_LIBRARIES!r}), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr.strip() == "[]"
