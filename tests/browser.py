"""Open a local HTML file in headless Chromium and report what happened, for tests.

The harness speaks the Chrome DevTools Protocol (CDP) itself: JSON messages over one
websocket (``websocket-client``), sent with ids and answered in order, events collected on the
side. Nothing here needs the network: Chromium starts with its background services off, its
proxy pointed at a closed local port, and the page's own http(s)/ws(s) requests blocked
(they still appear in :attr:`PageReport.requests`, so a test can assert there are none).

Usage::

    chromium = find_chromium()          # None: skip the test
    report = inspect_page(path)         # PageReport
    assert report.external_requests() == []
    assert report.console_errors == []
    assert distinct_colours(report.screenshot) > 50

Chromium is always killed (its whole process group) and its profile removed, also on errors and
timeouts.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BrowserError",
    "ImageInfo",
    "PageReport",
    "distinct_colours",
    "find_chromium",
    "inspect_page",
]

#: Names tried on PATH, in order, after the ``BIGBENCH_CHROMIUM`` override.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Schemes a page must not fetch on its own; requests to them are blocked and reported.
NETWORK_SCHEMES = ("http:", "https:", "ws:", "wss:", "ftp:")


class BrowserError(RuntimeError):
    """Chromium did not start, the protocol failed, or the page could not be opened."""


@dataclass(frozen=True)
class ImageInfo:
    """One ``<img>`` of the page after its load event."""

    src: str  #: the first 40 characters of ``currentSrc`` (or ``src``)
    complete: bool
    natural_width: int
    natural_height: int

    @property
    def loaded(self) -> bool:
        return self.complete and self.natural_width > 0 and self.natural_height > 0


@dataclass
class PageReport:
    """What a page did between navigation and a moment after its load event."""

    url: str  #: the ``file://`` URL that was opened
    title: str  #: ``document.title``
    requests: list[str] = field(default_factory=list)  #: every request URL, in order
    console_errors: list[str] = field(default_factory=list)  #: "<kind>: <text>" each
    images: list[ImageInfo] = field(default_factory=list)
    screenshot: bytes = b""  #: full-page PNG

    def external_requests(self) -> list[str]:
        """Request URLs other than the page itself and ``data:``/``blob:``/``about:`` URLs."""
        return [u for u in self.requests
                if u != self.url and not u.startswith(("data:", "blob:", "about:"))]


def find_chromium() -> str | None:
    """The Chromium executable to use: ``$BIGBENCH_CHROMIUM``, else the first name on PATH.

    An override that is set but not an executable returns None (the caller skips), rather than
    quietly using some other browser.
    """
    override = os.environ.get("BIGBENCH_CHROMIUM", "").strip()
    if override:
        found = shutil.which(override)
        return found if found else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def distinct_colours(png_bytes: bytes) -> int:
    """The number of distinct RGB(A) colours of a PNG: ~1 for a blank page, many for a figure."""
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(io.BytesIO(png_bytes), format="png")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    flat = np.ascontiguousarray(pixels.reshape(-1, pixels.shape[-1]))
    return int(np.unique(flat, axis=0).shape[0])


# --------------------------------------------------------------------------------------------
# A tiny synchronous CDP client.


class _Deadline:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.end = time.monotonic() + timeout_s

    def left(self, what: str) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"headless Chromium: timed out after {self.timeout_s:g} s {what}")
        return left


class _CDP:
    """One websocket to one target: ``call`` waits for its answer, events pile up meanwhile."""

    def __init__(self, ws_url: str, deadline: _Deadline) -> None:
        import websocket

        self._websocket = websocket
        self.deadline = deadline
        # suppress_origin: Chromium refuses DevTools websockets that carry an Origin header
        # unless started with --remote-allow-origins. http_no_proxy: never via $http_proxy.
        self.ws = websocket.create_connection(
            ws_url, timeout=deadline.left("connecting to DevTools"), suppress_origin=True,
            http_no_proxy=["127.0.0.1", "localhost"], enable_multithread=False)
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)

    def _receive(self, what: str) -> dict[str, Any]:
        while True:
            self.ws.settimeout(self.deadline.left(what))  # TimeoutError once it is spent
            try:
                raw = self.ws.recv()
            except (self._websocket.WebSocketTimeoutException, TimeoutError):
                continue
            except (self._websocket.WebSocketConnectionClosedException, OSError) as err:
                raise BrowserError(f"DevTools connection lost {what}: {err}") from err
            return json.loads(raw)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        msg_id = self._next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = self._receive(f"waiting for {method}")
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, start: int = 0) -> dict[str, Any]:
        """The first ``method`` event at or after index ``start`` of :attr:`events`."""
        seen = start
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            msg = self._receive(f"waiting for {method}")
            if "method" in msg:
                self.events.append(msg)


# --------------------------------------------------------------------------------------------
# Launching and stopping Chromium.


def _closed_local_port() -> int:
    """A local TCP port nothing listens on (just released by us): a proxy that always fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chromium_args(profile: Path, width: int, height: int) -> list[str]:
    args = [
        "--headless=new",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--mute-audio",
        "--password-store=basic",
        "--use-mock-keychain",
        # Keep Chromium from reaching the network on its own.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--disable-features=Translate,OptimizationHints,MediaRouter,"
        "DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
        "--metrics-recording-only",
        "--no-pings",
        # Anything that still tries goes to a dead local proxy and fails at once (no DNS, no
        # waiting on unroutable addresses); the page's own requests are blocked over CDP too.
        f"--proxy-server=http://127.0.0.1:{_closed_local_port()}",
        "--proxy-bypass-list=<-loopback>",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
    return args + ["about:blank"]


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies awaiting their reaper don't)."""
    proc_root = Path("/proc")
    if not proc_root.is_dir():  # no procfs: any member at all, zombies included
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # state ppid pgrp ...
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop Chromium's whole process group: SIGTERM, then SIGKILL to whatever still runs.

    Chromium runs in its own session (``start_new_session``), so the group is the browser,
    its zygotes, renderers and utility processes, and nothing else.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=3)
    end = time.monotonic() + 5
    while True:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.02)
        if (proc.returncode is not None and not _group_alive(proc.pid)) \
                or time.monotonic() > end:
            return


def _remove(path: Path) -> None:
    for _ in range(10):  # a dying child can still write for a moment
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    shutil.rmtree(path, ignore_errors=True)


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _browser_ws_url(proc: subprocess.Popen[bytes], profile: Path, log: Path,
                    deadline: _Deadline) -> str:
    """Wait for ``DevToolsActivePort`` (port, then the browser target's path)."""
    port_file = profile / "DevToolsActivePort"
    while True:
        if proc.poll() is not None:
            raise BrowserError(f"Chromium exited with status {proc.returncode} before DevTools "
                               f"was up; its output ends:\n{_tail(log)}")
        with contextlib.suppress(OSError):
            lines = port_file.read_text().split("\n")
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        try:
            deadline.left("waiting for DevToolsActivePort")
        except TimeoutError as err:
            raise TimeoutError(f"{err}; Chromium's output ends:\n{_tail(log)}") from None
        time.sleep(0.05)


def _page_ws_url(browser_ws: str, deadline: _Deadline) -> str:
    browser = _CDP(browser_ws, deadline)
    try:
        targets = browser.call("Target.getTargets")["targetInfos"]
        pages = [t for t in targets if t.get("type") == "page"]
        target_id = (pages[0]["targetId"] if pages
                     else browser.call("Target.createTarget", url="about:blank")["targetId"])
    finally:
        browser.close()
    host = browser_ws.split("/devtools/")[0]
    return f"{host}/devtools/page/{target_id}"


# --------------------------------------------------------------------------------------------
# Reading the page.

_IMAGES_JS = """
Array.from(document.images, img => ({
    src: String(img.currentSrc || img.src || "").slice(0, 40),
    complete: img.complete,
    naturalWidth: img.naturalWidth,
    naturalHeight: img.naturalHeight,
}))
"""

# Two animation frames: pending layout and paint are done before the screenshot (at most
# half a second, should frames not come).
_SETTLE_JS = """new Promise(done => {
    requestAnimationFrame(() => requestAnimationFrame(() => done(1)));
    setTimeout(() => done(0), 500);
})"""


def _evaluate(cdp: _CDP, expression: str, await_promise: bool = False) -> Any:
    result = cdp.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=await_promise)
    if "exceptionDetails" in result:
        raise BrowserError(f"evaluating {expression.strip()[:60]!r} failed: "
                           f"{result['exceptionDetails'].get('text')}")
    return result["result"].get("value")


def _remote_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type", ""))


def _collect(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    requests: list[str] = []
    errors: list[str] = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            requests.append(params["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(_remote_text(a) for a in params.get("args", []))
            errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exc = details.get("exception") or {}
            text = exc.get("description") or details.get("text", "")
            errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            where = f" ({entry['url']})" if entry.get("url") else ""
            errors.append(f"log.{entry.get('source', '?')}: {entry.get('text', '')}{where}")
    return requests, errors


def inspect_page(html: Path, width: int = 1280, height: int = 2000,
                 timeout_s: float = 30) -> PageReport:
    """Open ``html`` in headless Chromium, wait for its load event, and report what happened.

    The viewport is ``width`` x ``height`` CSS pixels (scale 1); the screenshot covers the whole
    page. Requests to http(s)/ws(s)/ftp are reported and blocked, never sent. ``timeout_s``
    bounds everything (start, load, collection); :class:`TimeoutError` when it is spent,
    :class:`BrowserError` when Chromium is missing, dies or cannot open the file.
    """
    html = Path(html).resolve()
    if not html.is_file():
        raise FileNotFoundError(html)
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError("no Chromium found (chromium, chromium-browser, google-chrome or "
                           "$BIGBENCH_CHROMIUM)")
    url = html.as_uri()
    deadline = _Deadline(timeout_s)
    workdir = Path(tempfile.mkdtemp(prefix="bigbench-chromium-"))
    profile, tmp, log = workdir / "profile", workdir / "tmp", workdir / "chromium.log"
    # Chromium's own temporary files (singleton socket, shared memory) land in our folder too.
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc: subprocess.Popen[bytes] | None = None
    cdp: _CDP | None = None
    try:
        profile.mkdir()
        tmp.mkdir()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [chromium, *_chromium_args(profile, width, height)], stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        page_ws = _page_ws_url(_browser_ws_url(proc, profile, log, deadline), deadline)
        cdp = _CDP(page_ws, deadline)
        for domain in ("Page", "Network", "Runtime", "Log"):
            cdp.call(f"{domain}.enable")
        cdp.call("Network.setCacheDisabled", cacheDisabled=True)
        # urlPatterns (URLPattern syntax) is the current form, urls (plain wildcards) the older
        # one; a Chromium that knows only one ignores the other.
        cdp.call("Network.setBlockedURLs",
                 urlPatterns=[{"urlPattern": f"{s}//*:*/*", "block": True}
                              for s in NETWORK_SCHEMES],
                 urls=[f"{s}*" for s in NETWORK_SCHEMES])
        cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                 deviceScaleFactor=1, mobile=False)

        start = len(cdp.events)
        nav = cdp.call("Page.navigate", url=url)
        if nav.get("errorText"):
            raise BrowserError(f"navigating to {url} failed: {nav['errorText']}")
        cdp.wait_for("Page.loadEventFired", start)

        _evaluate(cdp, _SETTLE_JS, await_promise=True)  # also drains events sent before it
        title = _evaluate(cdp, "document.title") or ""
        images = [ImageInfo(src=i["src"], complete=bool(i["complete"]),
                            natural_width=int(i["naturalWidth"]),
                            natural_height=int(i["naturalHeight"]))
                  for i in _evaluate(cdp, _IMAGES_JS) or []]

        content = cdp.call("Page.getLayoutMetrics").get("cssContentSize", {})
        full_w = max(width, int(content.get("width", 0) + 0.999))
        full_h = min(max(height, int(content.get("height", 0) + 0.999)), 16384)
        shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        fromSurface=True,
                        clip={"x": 0, "y": 0, "width": full_w, "height": full_h, "scale": 1})
        requests, errors = _collect(cdp.events)
        return PageReport(url=url, title=title, requests=requests, console_errors=errors,
                          images=images, screenshot=base64.b64decode(shot["data"]))
    finally:
        if cdp is not None:
            cdp.close()
        if proc is not None:
            _stop(proc)
        _remove(workdir)
