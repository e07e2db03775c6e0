"""Hostile clients against ``python gradio_app.py`` on loopback: each attack of issue 27, then a normal request.

One server runs in a subprocess for the module (tiny random-weight models, one inference slot, a
2 s body deadline); every wait is bounded, and the server is killed with SIGKILL at the end, so a
regression that hangs it (``/dev/zero`` once pinned its event loop and ignored SIGTERM) fails a test
instead of hanging CI. Peak memory is the server's ``VmHWM``, reset before an attack through
``/proc/<pid>/clear_refs``. The hostile checkpoint configs are loaded in this process: refusing
them must not build anything, so they need no server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from seg_core.checkpoint import CONFIG_KEY, CheckpointError, load_model, read_tensors, save_tensors
from tests.clips import write_clip
from tests.conftest import ROOT

START_TIMEOUT_S = 180  # importing torch, gradio and the models on a busy 2-core machine
BODY_DEADLINE_S = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python gradio_app.py`` in its own process group, killed (SIGKILL) by ``stop``."""

    def __init__(self, env: dict[str, str], port: int):
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "gradio_app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.log: list[str] = []
        started = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.log.append(line)
                if line.startswith("Serving on"):
                    started.set()
            started.set()  # the process ended: stop waiting

        threading.Thread(target=read, daemon=True).start()
        if not started.wait(START_TIMEOUT_S) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.log[-30:]))
        deadline = time.monotonic() + 60
        while True:  # "Serving on" is printed just before uvicorn binds the port
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("the server never listened:\n" + "".join(self.log[-30:])) from None
                threading.Event().wait(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def memory_mb(self, field: str) -> float:
        """``VmRSS`` (now) or ``VmHWM`` (peak since ``reset_peak``) of the server, in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")


@pytest.fixture(scope="module")
def server(weights_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    port = free_port()
    env = {**os.environ, "SEG_WEIGHTS_DIR": str(weights_dir), "SEG_DATA_DIR": str(tmp / "no-data"),
           "SEG_EXAMPLES_CACHE": str(tmp / "examples"), "GRADIO_TEMP_DIR": str(tmp / "uploads"),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "SEG_BODY_DEADLINE_S": str(BODY_DEADLINE_S), "SEG_INFER_WORKERS": "1", "SEG_INFER_THREADS": "1",
           "SEG_BACKEND": "pytorch", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    running = Server(env, port)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def photo_bytes() -> bytes:
    from io import BytesIO

    out = BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(out, format="JPEG")
    return out.getvalue()


def normal_request(server: Server, photo: bytes, timeout: float = 30) -> httpx.Response:
    answer = httpx.post(f"{server.url}/v1/segment?model=unet", content=photo, timeout=timeout)
    assert answer.status_code == 200 and "mask_png_base64" in answer.json(), answer.text
    return answer


def gradio_call(server: Server, api: str, data: list, timeout: float = 20) -> str:
    """The event stream of one call of gradio's ``/gradio_api/call/<api>``, as text."""
    with httpx.Client(base_url=server.url, timeout=timeout) as http:
        event = http.post(f"/gradio_api/call/{api}", json={"data": data})
        assert event.status_code == 200, event.text
        return http.get(f"/gradio_api/call/{api}/{event.json()['event_id']}").text


def upload(server: Server, path: Path) -> dict:
    with path.open("rb") as f:
        answer = httpx.post(f"{server.url}/gradio_api/upload", files={"files": (path.name, f)}, timeout=20)
    assert answer.status_code == 200, answer.text
    return {"path": answer.json()[0], "meta": {"_type": "gradio.FileData"}}


def server_file(path: str | Path) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


# ----------------------------------------------------------------------- file paths in event payloads

def test_event_payloads_naming_server_files_are_refused_before_they_are_read(server, tmp_path, photo_bytes):
    """gradio's "uploaded by this client" check must run although the app is mounted, not launched:
    a server photo is not segmented, ``/dev/zero`` is not read, and a path that exists is refused
    as one that does not (no oracle). This fails if a gradio upgrade skips the check again."""
    photo = tmp_path / "server-photo.jpg"  # a file on the server, outside gradio's upload folder
    photo.write_bytes(photo_bytes)
    answers = {}
    for path in (photo, "/dev/zero", tmp_path / "no-such-file.jpg", f"{tmp_path}/../{tmp_path.name}/server-photo.jpg"):
        answers[str(path)] = gradio_call(server, "analyze", [server_file(path), "none"])
        assert "event: error" in answers[str(path)] and "event: complete" not in answers[str(path)], answers
        assert "Cannot segment" not in answers[str(path)]  # our decoding never saw it
    missing = tmp_path / "no-such-file.jpg"
    assert answers[str(photo)].replace(photo.name, "") == answers[str(missing)].replace(missing.name, "")
    clip = write_clip(tmp_path / "server-clip.mp4")
    answer = gradio_call(server, "segment_video", [server_file(clip), "", 1])
    assert "event: error" in answer and "event: complete" not in answer, answer
    # The same photo, uploaded by the client, is segmented.
    assert "event: complete" in gradio_call(server, "analyze", [upload(server, photo), "none"])
    normal_request(server, photo_bytes)


def test_a_playlist_naming_a_server_video_is_refused(server, tmp_path, photo_bytes):
    clip = write_clip(tmp_path / "server-clip.mp4")
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{clip}\n#EXT-X-ENDLIST\n")
    answer = gradio_call(server, "segment_video", [upload(server, playlist), "", 1], timeout=60)
    assert "event: error" in answer and "is a playlist" in answer, answer
    normal_request(server, photo_bytes)


# --------------------------------------------------------------------------------- the plain HTTP API

def _open_request(port: int, headers: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(f"POST /v1/segment HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode() + body)
    return sock


def _status(sock: socket.socket) -> int | None:
    """The status of the answer on ``sock`` (None if the server closed it without one)."""
    try:
        head = sock.recv(4096)
    except (ConnectionResetError, socket.timeout):
        return None
    return int(head.split()[1]) if head.startswith(b"HTTP/1.1") else None


def test_idle_connections_do_not_block_a_real_client(server, photo_bytes):
    """50 clients send headers and no body: a real client is still answered within 2 s, and the
    idle ones get 408 once the body deadline has passed."""
    idle = [_open_request(server.port, "Content-Type: image/jpeg\r\nContent-Length: 100000\r\n") for _ in range(50)]
    try:
        t0 = time.monotonic()
        normal_request(server, photo_bytes, timeout=10)
        assert time.monotonic() - t0 < 2.0
        assert [_status(s) for s in idle] == [408] * len(idle)
    finally:
        for sock in idle:
            sock.close()
    normal_request(server, photo_bytes)


def test_a_trickled_body_times_out(server, photo_bytes):
    sock = _open_request(server.port, "Content-Length: 1000\r\n", b"x" * 10)
    try:
        t0 = time.monotonic()
        assert _status(sock) == 408
        assert time.monotonic() - t0 < BODY_DEADLINE_S + 5
    finally:
        sock.close()
    normal_request(server, photo_bytes)


def test_a_chunked_oversize_body_is_cut_at_the_cap(server, photo_bytes):
    """A chunked body has no Content-Length: the server must count it as it arrives and stop at
    10 MB, not buffer 100 MB first."""
    server.reset_peak()
    before = server.memory_mb("VmHWM")
    sock = _open_request(server.port, "Transfer-Encoding: chunked\r\n")
    chunk = b"%x\r\n" % 2**20 + b"\0" * 2**20 + b"\r\n"
    sent = 0
    try:
        for _ in range(100):  # 100 MB, unless the server stops reading first
            sock.sendall(chunk)
            sent += 1
        sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass  # refused part-way: what we want
    status = _status(sock)
    sock.close()
    assert status in (413, None), status  # None: the server closed the connection after its 413
    assert server.memory_mb("VmHWM") - before < 50, (before, server.memory_mb("VmHWM"), sent)
    normal_request(server, photo_bytes)


def test_form_and_json_bodies_get_a_sentence(server, photo_bytes):
    form = httpx.post(f"{server.url}/v1/segment", files={"image": ("a.jpg", photo_bytes)}, timeout=20)
    assert form.status_code == 400 and "--data-binary" in form.json()["error"], form.text
    doc = httpx.post(f"{server.url}/v1/segment", json={"image": "x"}, timeout=20)
    assert doc.status_code == 400 and "--data-binary" in doc.json()["error"], doc.text
    normal_request(server, photo_bytes)


def test_gradio_reports_no_analytics(server):
    config = httpx.get(f"{server.url}/config", timeout=20).json()
    assert config["analytics_enabled"] is False


def test_an_invalid_tta_is_refused(server, tmp_path, photo_bytes):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(photo_bytes)
    answer = gradio_call(server, "analyze", [upload(server, photo), "sideways"])
    assert "event: error" in answer and "tta must be one of none, flip" in answer, answer


def big_png(path: Path, width: int = 7900, height: int = 5000) -> Path:
    """A valid, decodable grey-free RGB PNG of ``width x height`` (39.5 MP, under the 40 MP cap) of
    about 120 KB: zero rows compress ~1000:1."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\0" * (height * (1 + 3 * width)), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


#: Peak memory of one 39.5 MP image through /v1/segment (decode, resize, mask, PNG), in MiB, with
#: headroom; README "Limits and safety" states the budget from it.
PER_IMAGE_PEAK_MB = 1200


@pytest.mark.slow
def test_concurrent_huge_pngs_stay_within_the_memory_budget(server, tmp_path, photo_bytes):
    """Six ~120 KB PNGs of 39.5 MP at once: only the one inference slot's image is decoded at a time,
    so the peak is about one image's, not six; RSS comes back down afterwards."""
    body = big_png(tmp_path / "big.png").read_bytes()
    normal_request(server, photo_bytes)
    start = server.memory_mb("VmRSS")
    server.reset_peak()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{server.url}/v1/segment", content=body, timeout=300), range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text[:200] for a in answers]
    peak = server.memory_mb("VmHWM")
    print(f"start {start:.0f} MiB, peak {peak:.0f} MiB, after {server.memory_mb('VmRSS'):.0f} MiB")
    assert peak - start < PER_IMAGE_PEAK_MB + 6 * 10, (start, peak)
    assert server.memory_mb("VmRSS") - start < 300
    normal_request(server, photo_bytes)


# ------------------------------------------------------------------------------ checkpoint configs

HOSTILE_CONFIGS = {
    "huge head": ({"arch": "fcn_vgg16", "encoder": "vgg16_bn", "head_channels": 2**22}, "head_channels must be"),
    "big encoder": ({"arch": "unet", "encoder": "tu-convnext_xlarge"}, "unknown encoder 'tu-convnext_xlarge'"),
    "hub download": ({"arch": "unet", "encoder": "tu-hf-hub:timm/resnet18.a1_in1k"}, "unknown encoder 'tu-hf-hub"),
    "huge input": ({"arch": "unet", "input_size": [65536, 65536]}, "input_size must be"),
    "not an object": ([1, 2], "not a JSON object"),
    "odd mean": ({"arch": "unet", "mean": [0.5, "a", 0.5]}, "mean must be three numbers"),
}


@pytest.mark.parametrize("kind", list(HOSTILE_CONFIGS))
def test_hostile_checkpoint_configs_are_refused_before_anything_is_built(weights_dir, tmp_path, kind, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("a checkpoint's config made the library reach for the Hub")

    for name in ("hf_hub_download", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, no_network)
    config, message = HOSTILE_CONFIGS[kind]
    tensors, meta = read_tensors(weights_dir / "unet.safetensors")
    path = save_tensors({"x": tensors[next(iter(tensors))]}, tmp_path / "hostile.safetensors",
                        {**meta, CONFIG_KEY: json.dumps(config)})
    t0 = time.monotonic()
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path)
    assert time.monotonic() - t0 < 2 and "\n" not in str(err.value)
