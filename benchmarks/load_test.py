"""Bounded loopback load test of the Gradio app's APIs.

Starts ``python gradio_app.py`` (the page, gradio's API and the plain HTTP API) on 127.0.0.1 (a
free port), runs ``--clients`` concurrent clients calling ``--api`` for ``--seconds``, samples the
server's resident memory every second, and prints throughput, p50/p95 latency, errors and memory
(start, max, end) as a table and JSON. ``/segment`` and ``/segment_inline`` are called with
gradio_client, ``/v1/segment`` with one keep-alive ``http.client`` connection per client thread.
Traffic never leaves this machine; clients and duration are capped.

A client turned away with "queue full" retries after an exponential backoff with full jitter
(a random wait up to 0.25 s, 0.5 s, 1 s... capped at 4 s), as real clients do, rather than at
once; the refusals are counted apart from errors. CPU time is read from ``/proc``: the server
process alone (``/proc/<pid>/stat``), this process (the clients) and the whole machine
(``/proc/stat``, which includes anything else running), each divided by the requests answered.
``--stages N`` first times the server's own steps in this process (decode, model, PNG, shares),
so the rest of the server's CPU per request is Gradio's: HTTP, queue, event stream, files.

    python benchmarks/load_test.py --clients 20 --seconds 60 --weights weights --image photo.jpg
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MAX_CLIENTS, MAX_SECONDS = 50, 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """Terminate a child process, and kill it if it has not exited after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def start_server(weights: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python gradio_app.py``, the entry point a Space runs, on 127.0.0.1:``port`` (``env``: more
    environment variables)."""
    env = {**os.environ, "SEG_WEIGHTS_DIR": str(weights), "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), **(env or {})}
    return subprocess.Popen([sys.executable, "gradio_app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120, interval: float = 0.5) -> None:
    """Until ``url`` answers (polled every ``interval`` s: a start-up timer wants a small one)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(interval)
    raise RuntimeError(f"the server did not answer at {url} within {timeout:.0f}s")


TICK = os.sysconf("SC_CLK_TCK")
BACKOFF_BASE_S, BACKOFF_CAP_S, MAX_ATTEMPTS = 0.25, 4.0, 10


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all its threads (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15 of stat


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (``/proc/stat``: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK


def backoff_s(attempt: int) -> float:
    """Full jitter: a uniform wait up to base * 2**attempt, capped, so refused clients spread out."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))


class Refused(Exception):
    """The server turned the request away because it is full (gradio's "queue is full", or 503)."""


def gradio_caller(url: str, image: Path, model: str, api: str):
    """A function that makes one gradio_client call of ``api`` (a client per thread, as users have)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)

    def call() -> None:
        try:
            client.predict(handle_file(str(image)), model, api_name=api)
        except Exception as err:
            if "queue is full" in str(err).lower():
                raise Refused(str(err)) from None
            raise

    return call


def http_caller(url: str, image: Path, model: str, api: str):
    """A function that POSTs the image's bytes to the plain API over one keep-alive connection."""
    import http.client
    from urllib.parse import urlsplit

    host = urlsplit(url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    body, target = image.read_bytes(), f"{api}?model={model}"

    def call() -> None:
        conn.request("POST", target, body=body, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        data = response.read()
        if response.status == 503:
            raise Refused(data.decode(errors="replace"))
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200].decode(errors='replace')}")
        json.loads(data)["mask_png_base64"]  # the answer is read as a client would

    return call


APIS = {"/segment": gradio_caller, "/segment_inline": gradio_caller, "/v1/segment": http_caller}


def stage_costs(weights: Path, image: Path, model: str, repeats: int) -> dict:
    """Median CPU ms of the server's own steps for one request, timed in this process."""
    from seg_core.inference import class_shares, load_image
    from seg_core.predictor import Predictor
    from seg_core.viz import png_bytes

    predictor = Predictor.from_dir(weights, names=(model,))
    data = image.read_bytes()
    steps = {"decode": lambda: load_image(data), "model": lambda: predictor.predict(rgb, (model,)),
             "png": lambda: png_bytes(mask), "shares": lambda: class_shares(mask)}
    rgb = load_image(data)
    mask = predictor.predict(rgb, (model,))[model].mask
    out = {}
    for name, step in steps.items():
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            step()
            times.append(time.process_time() - t0)
        out[f"{name}_cpu_ms"] = round(1000 * float(np.median(times)), 2)
    return out


def run(clients: int, seconds: float, weights: Path, image: Path, model: str, api: str = "/segment") -> dict:
    clients, seconds = min(clients, MAX_CLIENTS), min(seconds, MAX_SECONDS)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_server(weights, port)
    try:
        wait_ready(url, proc)
        warm = APIS[api](url, image, model, api)
        for _ in range(3):  # first requests set up caches and infer requests: not part of the figure
            warm()
        memory = [rss_mib(proc.pid)]
        latencies: list[float] = []
        errors: list[str] = []
        refused = [0]
        lock = threading.Lock()
        stop_at = time.monotonic() + seconds

        def worker() -> None:
            call = APIS[api](url, image, model, api)
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                for attempt in range(MAX_ATTEMPTS):
                    try:
                        call()
                        with lock:
                            latencies.append(time.perf_counter() - t0)  # what the user waited, retries included
                        break
                    except Exception as err:  # noqa: BLE001 - every failure is counted, none stops the test
                        if isinstance(err, Refused) and attempt + 1 < MAX_ATTEMPTS:
                            with lock:
                                refused[0] += 1
                            time.sleep(backoff_s(attempt))
                            continue
                        with lock:
                            errors.append(f"{type(err).__name__}: {err}")
                        break

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
        cpu0, own0, busy0 = process_cpu_s(proc.pid), time.process_time(), machine_busy_s()
        t_start = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            memory.append(rss_mib(proc.pid))
            if time.monotonic() > stop_at + 120:
                break  # a request hung: report what we have
        wall = time.monotonic() - t_start
        server_cpu, client_cpu = process_cpu_s(proc.pid) - cpu0, time.process_time() - own0
        machine_cpu = machine_busy_s() - busy0
    finally:
        stop(proc)
    lat = sorted(latencies)
    per_request = (lambda cpu: round(1000 * cpu / len(lat), 1) if lat else None)
    return {
        "clients": clients, "seconds": round(wall, 1), "model": model, "api": api,
        "image": f"{Image.open(image).width}x{Image.open(image).height}",
        "requests": len(lat), "errors": len(errors), "queue_full_retries": refused[0], "first_errors": errors[:3],
        "throughput_rps": round(len(lat) / wall, 2) if wall else 0.0,
        "p50_s": round(percentile(lat, 0.50), 3) if lat else None,
        "p95_s": round(percentile(lat, 0.95), 3) if lat else None,
        "server_cpu_ms_per_request": per_request(server_cpu),
        "client_cpu_ms_per_request": per_request(client_cpu),
        "machine_cpu_ms_per_request": per_request(machine_cpu),
        "rss_mib_start": round(memory[0], 1), "rss_mib_max": round(max(memory), 1),
        "rss_mib_end": round(memory[-1], 1),
        "rss_mib_each_minute": [round(m, 1) for m in memory[::60]],  # samples are a second apart
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help=f"concurrent clients (at most {MAX_CLIENTS})")
    parser.add_argument("--seconds", type=float, default=60, help=f"duration (at most {MAX_SECONDS})")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="weights folder to serve")
    parser.add_argument("--model", default="unet", help="model name sent to /segment")
    parser.add_argument("--image", type=Path, default=None,
                        help="photo to send (default: a synthetic 256x512 street-like image)")
    parser.add_argument("--api", default="/segment", choices=tuple(APIS),
                        help="gradio's API with the mask as a file to fetch or inline in the answer "
                             "(gradio_client), or the plain HTTP API (one POST)")
    parser.add_argument("--stages", type=int, default=0, metavar="N",
                        help="first time the server's own steps N times each in this process (CPU ms)")
    args = parser.parse_args(argv)
    image = args.image
    if image is None:
        image = Path("/tmp/seg_load_test.png")
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (256, 512, 3), dtype=np.uint8)).save(image)
    stages = stage_costs(args.weights, image, args.model, args.stages) if args.stages > 0 else {}
    result = {**run(args.clients, args.seconds, args.weights, image, args.model, args.api), **stages}
    for key, value in result.items():
        print(f"{key:>16}: {value}")
    print(json.dumps(result))
    return 0 if result["errors"] == 0 and result["requests"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
