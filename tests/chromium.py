"""Drive Debian's headless Chromium from a test: the DevTools protocol over --remote-debugging-pipe.

Why by hand: the pipe speaks NUL-terminated JSON on fds 3 and 4, so a page can be opened,
clicked, evaluated and screenshotted with the standard library alone (no websocket client, no
selenium driver, no browser download). WebGL runs on SwiftShader (the CPU rasterizer Chromium
ships), so a machine without a GPU draws real frames. The browser is started in its own session
with an empty profile and every background service off; `close()` ends it by its process id.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--disable-breakpad", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
]


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one page (a flattened DevTools session)."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 820, timeout: float = 60.0):
        self.timeout = timeout
        self.events: list[dict] = []
        self._next = 0
        self._buf = b""
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, to_browser_r, 3), (os.POSIX_SPAWN_DUP2, from_browser_w, 4)]
        args = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
        devnull = os.open(os.devnull, os.O_WRONLY)
        actions += [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
        self.pid = os.posix_spawn(CHROMIUM, args, os.environ, file_actions=actions, setsid=True)
        for fd in (to_browser_r, from_browser_w, devnull):
            os.close(fd)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        for domain in ("Page", "Runtime", "Network"):
            self.call(f"{domain}.enable", session=True)

    # -- protocol ------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError("no answer from Chromium in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed its pipe (it exited)")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def pump(self, seconds: float = 0.0) -> None:
        """Collect the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except BrowserError:
            pass

    # -- page helpers --------------------------------------------------------------------------
    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)

    def wait_for(self, expression: str, timeout: float | None = None):
        """Poll `expression` until it is truthy (an expression that throws counts as not yet); returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError:  # the document is still loading (no body yet)
                value = None
            if value:
                return value
            self.pump(0.05)
        raise BrowserError(f"timed out waiting for {expression}; page errors: {self.errors()}")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, clip: dict | None = None) -> bytes:
        params = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"])

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.exceptionThrown":
                d = e["params"]["exceptionDetails"]
                out.append(d.get("exception", {}).get("description") or d.get("text", ""))
            elif e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"]))
        return out

    def close(self) -> None:
        try:
            os.write(self._to_browser, json.dumps({"id": self._next + 1, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        for _ in range(50):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        try:  # helpers left behind: the browser was started in a session (process group) of its own
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
