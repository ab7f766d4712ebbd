"""Debian's headless Chromium driven through chromedriver's W3C WebDriver API, over httpx.

The protocol the tests need is seven JSON endpoints (session, url, execute,
element, click, cookie, screenshot); speaking them directly spares the suite
Selenium and its dependency tree, and never downloads a browser.
"""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.broker import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # fixed by the W3C spec
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


class WebDriverError(RuntimeError):
    """chromedriver answered an error (a script threw, an element is missing...)."""


class Browser:
    """One chromedriver process and one browser session; `close()` ends both."""

    def __init__(self, workdir: Path, width: int = 1600, height: int = 1000) -> None:
        port = free_port()
        self._log = (workdir / "chromedriver.log").open("wb")
        self._driver = subprocess.Popen(
            [str(CHROMEDRIVER), f"--port={port}"], stdout=self._log, stderr=subprocess.STDOUT
        )
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False)
        self._session: str | None = None
        try:
            self._wait_ready()
            options = {
                "binary": str(CHROMIUM),
                "args": [
                    *FLAGS,
                    f"--user-data-dir={workdir / 'profile'}",
                    f"--window-size={width},{height}",
                ],
            }
            capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
            self._session = self._call("POST", "/session", {"capabilities": capabilities})[
                "sessionId"
            ]
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._driver.poll() is not None:
                raise WebDriverError(f"chromedriver exited with {self._driver.returncode}")
            try:
                if self._http.get("/status").json()["value"]["ready"]:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise WebDriverError("chromedriver did not become ready within 20 s")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        prefix = f"/session/{self._session}" if self._session and path != "/session" else ""
        answer = self._http.request(method, prefix + path, json=body)
        value = answer.json()["value"]
        if answer.status_code >= 400:
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message')}")
        return value

    def get(self, url: str) -> None:
        """Load a page and wait for it to finish loading."""
        self._call("POST", "/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        """Run JavaScript in the page (`return ...` to get a value)."""
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def click(self, css: str) -> None:
        """Click the first element matching a CSS selector, as a user would."""
        element = self._call("POST", "/element", {"using": "css selector", "value": css})
        self._call("POST", f"/element/{element[ELEMENT_KEY]}/click", {})

    def delete_cookies(self) -> None:
        """Forget every cookie of the page's site (HttpOnly ones too, which scripts cannot)."""
        self._call("DELETE", "/cookie")

    def screenshot(self, path: Path) -> None:
        """Save the visible page as PNG."""
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))

    def close(self) -> None:
        """End the session (chromedriver quits Chromium), then chromedriver itself."""
        try:
            if self._session is not None and self._driver.poll() is None:
                self._call("DELETE", "")
        finally:
            self._session = None
            self._http.close()
            self._driver.terminate()
            try:
                self._driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._driver.kill()
                self._driver.wait()
            self._log.close()
