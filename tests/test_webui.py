"""The web page served for real and called through `gradio_client`, as a browser calls it:
a good image, a corrupt upload, a mask of the wrong size (the tiny fixture models).

Gradio's and the client's telemetry are off, and every socket that would leave the
machine is refused and recorded: the demo must work with the network closed. (The client
side is told HF_HUB_OFFLINE: huggingface_hub 2.4's request headers fetch a registry from
the Hub once per process otherwise.)
"""
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from configs import tiny_inpaint_test, tiny_test
from resshift_jax import webapp, webui

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _Offline:
    """Refuses (and records) name lookups and connections beyond this machine."""

    def __init__(self, monkeypatch):
        self.attempts = []
        getaddrinfo, connect = socket.getaddrinfo, socket.socket.connect

        def guarded_getaddrinfo(host, *args, **kwargs):
            self._check(host)
            return getaddrinfo(host, *args, **kwargs)

        def guarded_connect(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self._check(address[0])
            return connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", guarded_connect)

    def _check(self, host):
        host = host.decode() if isinstance(host, bytes) else host
        if host is not None and host not in _LOOPBACK:
            self.attempts.append(host)
            raise OSError(f"the test is offline: {host}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(a gradio_client.Client on the served page, the offline guard)."""
    import gradio_client
    import huggingface_hub

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        offline = _Offline(monkeypatch)
        models = {**webapp.custom_model(tiny_test.get_config(), name="tiny"),
                  **webapp.custom_model(tiny_inpaint_test.get_config(), name="tiny inpaint")}
        engine = webapp.Engine(models, workdir=tmp_path_factory.mktemp("web"))
        demo = webui.build_demo(engine).queue(default_concurrency_limit=1)
        demo.launch(server_name="127.0.0.1", server_port=_free_port(),
                    prevent_thread_lock=True, share=False, quiet=True)
        try:
            assert not demo.analytics_enabled
            client = gradio_client.Client(
                demo.local_url, download_files=str(tmp_path_factory.mktemp("downloads")),
                verbose=False, analytics_enabled=False)
            assert not client.analytics_enabled
            yield client, offline
        finally:
            demo.close()
    assert offline.attempts == [], f"the demo reached for the network: {offline.attempts}"


def _restore(client, image, task="tiny", mask=None):
    from gradio_client import handle_file

    return client.predict(handle_file(image), task, None, 12345, 0, False, None,
                          mask and handle_file(mask), api_name="/restore")


def _photo(path, size=(27, 20)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).save(path)
    return str(path)


def test_good_image_gives_a_slider_pair_a_status_and_a_png(page, tmp_path):
    client, offline = page
    (before, after), status, download = _restore(client, _photo(tmp_path / "photo.png"))
    assert Image.open(before).size == Image.open(after).size == (108, 80)
    assert "27x20 → 108x80" in status and "compilation" in status
    assert download["visible"] and Image.open(download["value"]).format == "PNG"
    assert Image.open(download["value"]).size == (108, 80)
    assert os.path.basename(download["value"]) == "photo.png"
    assert offline.attempts == []


def test_corrupt_upload_is_the_engines_one_line_and_the_page_keeps_serving(page, tmp_path):
    from gradio_client.exceptions import AppError

    client, _ = page
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(AppError) as err:
        _restore(client, str(broken))
    message = str(err.value)
    assert message.startswith("broken.jpg: ") and "\n" not in message
    assert "Traceback" not in message and "request-" not in message
    (_, after), status, _ = _restore(client, _photo(tmp_path / "fine.png"))
    assert Image.open(after).size == (108, 80) and "model warm" in status


def test_mask_of_the_wrong_size_is_refused_with_the_sizes(page, tmp_path):
    from gradio_client.exceptions import AppError

    client, _ = page
    mask = tmp_path / "mask.png"
    Image.new("L", (16, 16), 255).save(mask)
    with pytest.raises(AppError, match="mask.png is 16x16 but the image is 32x32"):
        _restore(client, _photo(tmp_path / "face.png", (32, 32)), "tiny inpaint", str(mask))


def test_restore_is_the_only_api_endpoint(page):
    """The page's own callbacks (upload preview, model info, versions) are not API endpoints."""
    client, _ = page
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/restore"] and not api["unnamed_endpoints"]
    for name in ("/on_upload", "/on_model", "/lambda"):
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict(None, "tiny", None, api_name=name)


def test_app_on_a_taken_port_is_one_line(tmp_path):
    app = pathlib.Path(__file__).resolve().parents[1] / "app.py"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, str(app), "--config", "configs/tiny_test.py", "--released=false",
             "--port", str(port)], cwd=app.parent, capture_output=True, text=True, timeout=120,
            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and proc.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is taken or the host is not an "
        "address of this machine\n")
