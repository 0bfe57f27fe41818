"""Load on ``facefit serve``: API clients polling progress while runs execute, on 127.0.0.1 only.

    nice -n 19 .venv/bin/python benchmarks/serve_load.py --clients 20 --runs 2 \
        --json benchmarks/results/serve_load.json

Starts ``facefit serve`` as a child process on a free port of 127.0.0.1 with a
fresh data folder (the bundled demo gallery; ``--candidates``/``--steps`` set the
runs' size), makes a user and a case with the bundled sketch and its description,
then:

1. times page loads with nothing running (the case list, a case, the API's run view);
2. starts ``--runs`` runs at once (the loop decides each round) and lets
   ``--clients`` threads, each with its own connection, poll ``GET /api/v1/runs/{id}``
   every ``--interval`` seconds until every run has ended;
3. checks that no request failed and that every run finished with a result.

Bounded: at most ``--max-seconds`` of polling and ``--max-requests`` per client;
the server is stopped at the end. Nothing but 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "sdk" / "facefit" / "demo_data"
PASSWORD = "load-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    facefit = [sys.executable, "-m", "facefit"]
    subprocess.run(
        [*facefit, "users", "add", "loadtest", "--password-stdin", "--data", str(data)],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    command = [
        *facefit, "serve", "--data", str(data), "--host", "127.0.0.1", "--port", str(port),
        "--candidates", str(args.candidates), "--steps", str(args.steps),
        "--rounds", str(args.rounds), "--workers", str(args.runs), "--queue", str(args.runs),
    ]  # fmt: skip
    log = open(data / "server.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, server: subprocess.Popen, headers: dict, limit: float = 600) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if server.poll() is not None:
            raise RuntimeError(f"facefit serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/api/v1/galleries", headers=headers).json()["ready"]:
                return time.monotonic() - start
        except (httpx.HTTPError, KeyError):
            pass
        time.sleep(0.5)
    raise RuntimeError("the server's models did not load in time")


def token(base: str, limit: float = 120) -> dict:
    start = time.monotonic()
    while True:
        try:
            r = httpx.post(f"{base}/api/v1/tokens", json={"name": "loadtest", "password": PASSWORD})
            return {"Authorization": f"Bearer {r.json()['token']}"}
        except (httpx.HTTPError, KeyError):
            if time.monotonic() - start > limit:
                raise
            time.sleep(0.3)


def make_case(client: httpx.Client) -> tuple[int, list[int]]:
    probe = next(iter((DEMO / "probes.csv").read_text().splitlines()[1:])).split(",", 2)
    case = client.post("/api/v1/cases", json={"title": "load test"}).json()
    with open(DEMO / probe[1], "rb") as handle:
        sketch = client.post(
            f"/api/v1/cases/{case['id']}/evidence",
            data={"witness": "W1", "kind": "sketch"},
            files={"file": ("sketch.png", handle, "image/png")},
        ).json()
    text = client.post(
        f"/api/v1/cases/{case['id']}/evidence",
        data={"witness": "W1", "kind": "text", "text": probe[2].strip('"')},
    ).json()
    return case["id"], [sketch["id"], text["id"]]


def page_loads(base: str, headers: dict, case_id: int, run_id: int, n: int = 20) -> dict:
    """Server round trips in ms for the pages an investigator opens most (idle server)."""
    browser = httpx.Client(base_url=base)
    form = browser.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    browser.post("/login", data={"name": "loadtest", "password": PASSWORD, "csrf": csrf})
    out = {}
    for path in ("/", f"/cases/{case_id}", f"/runs/{run_id}", f"/runs/{run_id}/report"):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            assert browser.get(path).status_code == 200, path
            times.append((time.perf_counter() - start) * 1000)
        out[path] = {
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
        }
    return out


def poll(base: str, headers: dict, runs: list[int], args, done: threading.Event, out: dict) -> None:
    client = httpx.Client(base_url=base, headers=headers, timeout=30)
    latencies, errors, i = [], [], 0
    deadline = time.monotonic() + args.max_seconds
    while not done.is_set() and i < args.max_requests and time.monotonic() < deadline:
        run = runs[i % len(runs)]
        start = time.perf_counter()
        try:
            response = client.get(f"/api/v1/runs/{run}")
            if response.status_code != 200:
                errors.append(f"{response.status_code} {response.text[:100]}")
        except httpx.HTTPError as exc:
            errors.append(repr(exc))
        latencies.append((time.perf_counter() - start) * 1000)
        i += 1
        time.sleep(args.interval)
    out["latencies"], out["errors"] = latencies, errors


def _seconds(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="Seconds between polls.")
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--max-requests", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="facefit-serve-load-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data, port, args)
    try:
        headers = token(base)
        load_seconds = wait_ready(base, server, headers)
        api = httpx.Client(base_url=base, headers=headers, timeout=30)
        case_id, evidence = make_case(api)
        body = {"gallery": "demo", "evidence": evidence, "interactive": False}
        started = time.monotonic()
        runs = [
            api.post(f"/api/v1/cases/{case_id}/runs", json=body).json()["id"]
            for _ in range(args.runs)
        ]
        done, results = threading.Event(), [{} for _ in range(args.clients)]
        threads = [
            threading.Thread(target=poll, args=(base, headers, runs, args, done, results[i]))
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        views = []
        while time.monotonic() - started < args.max_seconds:
            views = [api.get(f"/api/v1/runs/{r}").json() for r in runs]
            if all(v["status"] not in ("queued", "running", "waiting") for v in views):
                break
            time.sleep(1)
        runs_seconds = time.monotonic() - started
        done.set()
        for t in threads:
            t.join()
        lost = [
            v["id"] for v in views
            if v["status"] != "finished" or api.get(f"/api/v1/runs/{v['id']}/result.json").status_code != 200
        ]  # fmt: skip
        pages = page_loads(base, headers, case_id, runs[0])
    finally:
        server.terminate()
        server.wait(30)
    latencies = sorted(x for r in results for x in r.get("latencies", []))
    errors = [e for r in results for e in r.get("errors", [])]
    report = {
        "clients": args.clients,
        "runs": args.runs,
        "settings": {"rounds": args.rounds, "candidates": args.candidates, "steps": args.steps},
        "model_load_seconds": round(load_seconds, 1),
        "runs_wall_seconds": round(runs_seconds, 1),
        "run_statuses": [v["status"] for v in views],
        "run_seconds": [_seconds(v["started"], v["finished"]) for v in views],
        "lost_runs": lost,
        "poll_requests": len(latencies),
        "poll_errors": len(errors),
        "error_examples": errors[:5],
        "poll_ms": {
            "median": round(statistics.median(latencies), 1) if latencies else None,
            "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
            "max": round(latencies[-1], 1) if latencies else None,
        },
        "page_loads_idle": pages,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if errors or lost:
        sys.exit(1)


if __name__ == "__main__":
    main()
