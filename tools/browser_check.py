"""The web demo in a real browser: start `app.py`, upload a photo, press Restore, find the result.

    pip install -r requirements-browser.txt         # Python Playwright (drives the browser)
    apt-get install -y chromium                     # Debian's Chromium; no `playwright install`
    python tools/browser_check.py                   # the tiny fixture model, a photo of ../shared/data
    python tools/browser_check.py --image me.jpg --max_side 128 -- \
        --config configs/demo.py --unet_ckpt runs/demo --released=false   # flags after -- go to app.py

The server runs on one CPU device unless XLA_FLAGS says otherwise. Headless Chromium loads
the page with every request beyond this machine refused (and reported: the demo must work
offline), uploads the photo (shrunk so its longer side is at most --max_side, to keep a CPU
run short), clicks Restore (#restore) and waits for the result in the slider (#result) and
the status line (#status). An error toast, a page error, a refused request or a timeout is a
failure. It saves a screenshot (--screenshot, default docs/webdemo.png, in 256 colours),
prints one verdict line and exits 0 or 1; the server is stopped on every way out. Not part
of CI: it needs a browser and a minute or more of CPU.
"""
import argparse
import io
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "realset65"
DEFAULT_PHOTO = "butterfly2.png"
TINY_MODEL = ["--config", "configs/tiny_test.py", "--released=false"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
_OUTCOME_JS = """() => {
    const toast = document.querySelector('[data-testid="toast-body"]');
    if (toast) return {error: toast.innerText};
    const shown = [...document.querySelectorAll('#result img')]
        .filter(img => img.complete && img.naturalWidth > 0);
    const status = document.querySelector('#status')?.innerText || '';
    if (shown.length && status.includes('→'))
        return {status: status.trim(), sizes: shown.map(img => [img.naturalWidth, img.naturalHeight])};
    return null;
}"""


class CheckFailed(Exception):
    """The verdict's reason (one line), and lines to print after it (the server's log)."""

    def __init__(self, reason: str, details: str = ""):
        super().__init__(reason)
        self.details = details


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _photo(path: pathlib.Path, max_side: int, folder: pathlib.Path):
    """(the upload: the photo as an RGB PNG whose longer side is at most `max_side`, WxH)."""
    image = Image.open(path).convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = folder / f"{path.stem}.png"
    image.save(out)
    return out, f"{image.width}x{image.height}"


def _start_server(app_flags, port: int, log_path: pathlib.Path) -> subprocess.Popen:
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1",  # tests/one_device.py
           **os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "app.py", *app_flags, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_server(server: subprocess.Popen):
    """SIGTERM to the server's process group, SIGKILL if it is still there after 10 s."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _log_tail(log_path: pathlib.Path, lines: int = 15) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def _wait_for_page(url: str, server: subprocess.Popen, log_path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CheckFailed(f"app.py exited with {server.returncode} before serving; "
                              "its log ends:", _log_tail(log_path))
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise CheckFailed(f"no page at {url} after {timeout:.0f} s; app.py's log ends:",
                      _log_tail(log_path))


def _save_screenshot(png: bytes, path: pathlib.Path):
    """A 256-colour PNG: a page is mostly flat colour, and docs/ stays small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _drive(url: str, photo: pathlib.Path, screenshot: pathlib.Path, timeout_s: float) -> str:
    """Upload, restore, screenshot; the verdict's detail, or CheckFailed."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    refused, page_errors = [], []

    def local_only(route):
        if urllib.parse.urlsplit(route.request.url).hostname in _LOCAL_HOSTS:
            return route.continue_()
        refused.append(route.request.url)
        return route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=CHROMIUM_ARGS, headless=True)
        except PlaywrightError as err:
            raise CheckFailed(f"cannot start /usr/bin/chromium: {str(err).splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.route("**/*", local_only)
            page.on("pageerror", lambda err: page_errors.append(str(err)))
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_selector("#restore", timeout=60_000)
            page.set_input_files("#input-file input[type=file]", str(photo))
            page.wait_for_selector("#input-image img", timeout=60_000)  # the decoded preview
            start = time.monotonic()
            page.click("#restore")
            try:
                outcome = page.wait_for_function(_OUTCOME_JS, timeout=timeout_s * 1000,
                                                 polling=500).json_value()
            except PlaywrightTimeout:
                raise CheckFailed(f"no result within {timeout_s:.0f} s of pressing Restore")
            seconds = time.monotonic() - start
            page.wait_for_timeout(500)  # the slider settles before the screenshot
            _save_screenshot(page.screenshot(full_page=True), screenshot)
        except PlaywrightError as err:  # a timeout on the way, the page gone, ...
            raise CheckFailed(f"in the page: {str(err).splitlines()[0]}") from None
        finally:
            browser.close()
    if "error" in outcome:
        raise CheckFailed(f"the page showed an error: {' '.join(outcome['error'].split())}; "
                          f"screenshot {screenshot}")
    if refused:
        raise CheckFailed(f"the page reached beyond this machine: {refused[:3]}")
    if page_errors:
        raise CheckFailed(f"page errors: {page_errors[:3]}")
    sizes = " and ".join(f"{w}x{h}" for w, h in outcome["sizes"])
    return (f"result shown ({sizes}) {seconds:.0f} s after Restore; "
            f"status: {outcome['status']}; screenshot {screenshot}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", type=pathlib.Path, default=PHOTOS / DEFAULT_PHOTO,
                   help="the photo to upload (default: %(default)s)")
    p.add_argument("--max_side", type=int, default=64,
                   help="shrink the photo so its longer side is at most this")
    p.add_argument("--screenshot", type=pathlib.Path, default=ROOT / "docs" / "webdemo.png")
    p.add_argument("--port", type=int, default=0, help="app.py's port (default: a free one)")
    p.add_argument("--start_timeout", type=float, default=180, help="seconds for the page")
    p.add_argument("--timeout", type=float, default=600, help="seconds for the restoration")
    p.add_argument("app_flags", nargs="*", help="after --: app.py's flags (default: the "
                   f"tiny fixture model, {' '.join(TINY_MODEL)})")
    args = p.parse_args()
    if not args.image.is_file():
        print(f"browser check: FAILED (no photo {args.image}; pass --image)")
        return 1
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        tmp = pathlib.Path(tmp)
        photo, size = _photo(args.image, args.max_side, tmp)
        log_path = tmp / "app.log"
        server = _start_server(args.app_flags or TINY_MODEL, port, log_path)
        try:
            _wait_for_page(url, server, log_path, args.start_timeout)
            detail = _drive(url, photo, args.screenshot, args.timeout)
        except CheckFailed as err:
            print(f"browser check: FAILED ({err})")
            if err.details:
                print(err.details)
            return 1
        finally:
            _stop_server(server)
    print(f"browser check: OK ({args.image.name} at {size}: {detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
