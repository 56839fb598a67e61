"""The model API against the Python model servers a user would otherwise pick, same task, same run.

    uv run --project service python -m benchmarks.peers [--rounds 3] [--only NAME ...] [--workdir DIR]

Each peer gets a virtualenv of its own under the work directory (they pin conflicting FastAPI,
Starlette and uvicorn versions; MLServer runs with uvloop 0.21, which its workers need), made once
and reused. One scikit-learn pipeline (TF-IDF + logistic regression, the seed's approach) is trained
once on ../shared/data and served by every peer; this API serves its own shipped artifact. Then,
interleaved over rounds (every system once per round, so drift on a shared machine hits all):

- cold start: process start to the first successful inference, every environment byte-compiled as
  an image would be;
- closed loop (wrk, one thread): req/s, p50 and p99 at 1 and 32 connections, one ~2 KB e-mail;
- a batch of 32 of those e-mails at 8 connections, in e-mails/s (where the protocol takes batches);
- open loop at fixed offered rates (`benchmarks.openloop`): share answered 2xx, p99 and CPU per answer;
- CPU time per request and resident memory after the load (the whole process tree).

The server runs pinned to CPU 0, the load on CPU 1 (when there are two). It prints one table of
medians, the ratios of this API to each peer, and how noisy the run was (spread between rounds,
load average). Only 127.0.0.1 is contacted; every process started is stopped by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import wrk
from benchmarks.openloop import http_request, open_loop
from benchmarks.openloop import run as run_load
from benchmarks.procfs import cpu_seconds, rss_mb
from benchmarks.reliability import EMAIL, HOST, REPO, free_port

DATA = REPO.parent / "shared" / "data"
SKLEARN = "scikit-learn==1.9.1"  # one version everywhere: the pickled pipeline loads in every peer
OPEN_LOOP_RATES = (200, 1000)
BATCH = 32


@dataclass(frozen=True)
class Peer:
    name: str
    packages: tuple[str, ...]  # pip requirements of its own virtualenv; () = this API's service env
    # argv to start it: (python of its env, port, work dir) -> argv
    command: Callable[[str, int, Path], list[str]]
    single: Callable[[str], tuple[str, bytes]]  # text -> (path, JSON body)
    batch: Callable[[list[str]], tuple[str, bytes]] | None = None


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


FASTAPI_APP = """
import os, joblib
from fastapi import FastAPI
from pydantic import BaseModel
model = joblib.load(os.environ["SCAM_MODEL"])
app = FastAPI()
class Email(BaseModel):
    text: str
class Emails(BaseModel):
    texts: list[str]
@app.post("/predict")
def predict(email: Email) -> dict:
    return {"score": float(model.predict_proba([email.text])[0, 1])}
@app.post("/predict_batch")
def predict_batch(emails: Emails) -> dict:
    return {"scores": model.predict_proba(emails.texts)[:, 1].tolist()}
"""

KSERVE_APP = """
import sys, joblib, kserve
class Scam(kserve.Model):
    def __init__(self):
        super().__init__("scam")
        self.model = joblib.load(sys.argv[2])
        self.ready = True
    def predict(self, payload, headers=None):
        return {"predictions": self.model.predict_proba(payload["instances"])[:, 1].tolist()}
if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[1]), grpc_port=int(sys.argv[3]), workers=1).start([Scam()])
"""

BENTO_APP = """
import os, joblib, bentoml
@bentoml.service(workers=1)
class Scam:
    def __init__(self):
        self.model = joblib.load(os.environ["SCAM_MODEL"])
    @bentoml.api
    def predict(self, text: str) -> float:
        return float(self.model.predict_proba([text])[0, 1])
    @bentoml.api
    def predict_batch(self, texts: list[str]) -> list[float]:
        return self.model.predict_proba(texts)[:, 1].tolist()
"""

ASGI_CONSTANT = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": b'{"score":0.5}'})
"""


def _mlserver_settings(port: int, work: Path) -> None:
    folder = work / "mlserver"
    folder.mkdir(exist_ok=True)
    grpc, metrics = free_port(), free_port()
    (folder / "settings.json").write_text(json.dumps(
        {"http_port": port, "grpc_port": grpc, "metrics_port": metrics, "parallel_workers": 0,
         "debug": False}
    ))  # fmt: skip
    (folder / "model-settings.json").write_text(json.dumps(
        {"name": "scam", "implementation": "mlserver_sklearn.SKLearnModel",
         "parameters": {"uri": str(work / "model.joblib")}}
    ))  # fmt: skip


def _v2(texts: list[str]) -> bytes:
    return _json(
        {
            "inputs": [
                {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts,
                 "parameters": {"content_type": "str"}}
            ],
            "outputs": [{"name": "predict_proba"}],
        }
    )  # fmt: skip


def _write(work: Path, name: str, text: str) -> Path:
    path = work / name
    path.write_text(textwrap.dedent(text))
    return path


def _uvicorn(app: str) -> Callable[[str, int, Path], list[str]]:
    """Serve the ASGI app `module:attribute` from the work directory with uvicorn's defaults."""
    return lambda py, port, work: [py, "-m", "uvicorn", "--app-dir", str(work), "--port", str(port),
                                   "--log-level", "warning", "--no-access-log", app]  # fmt: skip


PEERS: dict[str, Peer] = {
    "asgi-constant": Peer(
        "asgi-constant",
        ("uvicorn[standard]==0.54.0",),
        _uvicorn("constant:app"),
        lambda text: ("/", _json({"text": text})),
    ),
    "scamguard": Peer(
        "scamguard",
        (),
        lambda py, port, work: [py, "-m", "service"],
        lambda text: ("/v1/classify", _json({"text": text})),
        lambda texts: ("/v1/classify", _json({"texts": texts})),
    ),
    "fastapi-sklearn": Peer(
        "fastapi-sklearn",
        ("fastapi", "uvicorn[standard]", SKLEARN, "joblib"),
        _uvicorn("fastapi_app:app"),
        lambda text: ("/predict", _json({"text": text})),
        lambda texts: ("/predict_batch", _json({"texts": texts})),
    ),
    "mlserver": Peer(
        "mlserver",
        ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0", SKLEARN),
        lambda py, port, work: [str(Path(py).with_name("mlserver")), "start", str(work / "mlserver")],
        lambda text: ("/v2/models/scam/infer", _v2([text])),
        lambda texts: ("/v2/models/scam/infer", _v2(texts)),
    ),
    "kserve": Peer(
        "kserve",
        ("kserve==0.21.0", SKLEARN, "joblib"),
        lambda py, port, work: [
            py,
            str(work / "kserve_app.py"),
            str(port),
            str(work / "model.joblib"),
            str(free_port()),
        ],
        lambda text: ("/v1/models/scam:predict", _json({"instances": [text]})),
        lambda texts: ("/v1/models/scam:predict", _json({"instances": texts})),
    ),
    "bentoml": Peer(
        "bentoml",
        ("bentoml==1.4.40", SKLEARN, "joblib"),
        lambda py, port, work: [
            str(Path(py).with_name("bentoml")),
            "serve",
            "bento_app:Scam",
            "--port",
            str(port),
            "--working-dir",
            str(work),
        ],
        lambda text: ("/predict", _json({"text": text})),
        lambda texts: ("/predict_batch", _json({"texts": texts})),
    ),
}


def compile_bytecode(python: str, *extra: Path) -> None:
    """Byte-compile an environment's packages (and `extra` source trees), as every image ships them.

    uv installs without .pyc files, and with PYTHONDONTWRITEBYTECODE set nothing writes them later,
    so each start would compile every imported module from source: that doubled this API's cold start
    (2.6 s against 1.2 s here) and lengthens every peer's. A container image has them (pip compiles
    on install; this API's Dockerfile runs compileall), so cold start is measured with them.
    """
    query = "import sysconfig; print(*{sysconfig.get_paths()[k] for k in ('purelib', 'platlib')})"
    found = subprocess.run([python, "-c", query], check=True, capture_output=True, text=True)  # noqa: S603
    trees = sorted({*found.stdout.split(), *map(str, extra)})
    # unchanged files (same mtime and size) are skipped, so a rerun takes a second or two
    compile_all = [python, "-m", "compileall", "-q", "-j", "0", *trees]
    subprocess.run(compile_all, check=False, stdout=subprocess.DEVNULL)  # noqa: S603


def environment(peer: Peer, work: Path) -> str:
    """The python of the peer's own virtualenv (made once), or this API's own for scamguard;
    byte-compiled either way (`compile_bytecode`)."""
    if not peer.packages:
        compile_bytecode(sys.executable, REPO / "runtime", REPO / "service")
        return sys.executable
    venv = work / "venvs" / peer.name
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = "\n".join(peer.packages)
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        uv = shutil.which("uv") or "uv"
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True)  # noqa: S603
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *peer.packages], check=True)  # noqa: S603
        stamp.write_text(wanted)
    compile_bytecode(str(python))
    return str(python)


def train_peer_model(work: Path, python: str) -> None:
    """TF-IDF + logistic regression on the same training files, pickled once for every peer."""
    model = work / "model.joblib"
    if model.exists():
        return
    script = _write(work, "train_peer_model.py", '''
        import csv, gzip, sys, joblib
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        csv.field_size_limit(10**9)
        texts, labels = [], []
        for path in sys.argv[2:]:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    texts.append(row["text"]); labels.append(int(row["label"]))
        pipeline = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=200_000),
                                 LogisticRegression(max_iter=1000, C=4.0))
        pipeline.fit(texts, labels)
        joblib.dump(pipeline, sys.argv[1])
        print(f"trained on {len(texts)} e-mails")
    ''')  # fmt: skip
    files = [str(DATA / "enron_spam_6subsets.csv.gz"), str(DATA / "phishing_pot_2022_2024.csv.gz")]
    subprocess.run([python, str(script), str(model), *files], check=True, timeout=1800)  # noqa: S603


@dataclass
class Figures:
    cold_start_s: float = float("nan")
    rps_1: float = float("nan")
    p50_1_ms: float = float("nan")
    p99_1_ms: float = float("nan")
    rps_32: float = float("nan")
    p50_32_ms: float = float("nan")
    p99_32_ms: float = float("nan")
    batch_emails_s: float = float("nan")
    cpu_us_per_request: float = float("nan")
    rss_mb: float = float("nan")
    # rate -> (2xx share, p99 ms, CPU µs per 2xx answer)
    open_loop: dict[int, tuple[float, float, float]] = field(default_factory=dict)


def _post_ok(port: int, path: str, body: bytes) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(
                http_request("POST", path, body, {"Content-Type": "application/json", "Connection": "close"})
            )
            return sock.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@contextlib.contextmanager
def started(peer: Peer, python: str, work: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], float]]:
    port = free_port()
    if peer.name == "mlserver":
        _mlserver_settings(port, work)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SCAMGUARD_HOST": HOST,
        "SCAMGUARD_PORT": str(port),
        "SCAMGUARD_LOG_LEVEL": "WARNING",
        "SCAMGUARD_RATE_LIMIT": "",
        "SCAM_MODEL": str(work / "model.joblib"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else []
    path, body = peer.single(EMAIL)
    began = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [*pin, *peer.command(python, port, work)], env=env, cwd=work if peer.packages else REPO,
        stdout=subprocess.DEVNULL, stderr=(work / f"{peer.name}.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    try:
        deadline = began + 120
        while not _post_ok(port, path, body):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (work / f"{peer.name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{peer.name} did not answer an inference within 120 s:\n{log}")
            time.sleep(0.02)
        yield port, process, time.monotonic() - began
    finally:
        # The whole session: servers that fork workers (MLServer, BentoML) go with it, by its PID.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def measure(peer: Peer, python: str, work: Path, seconds: int) -> Figures:
    figures = Figures()
    with started(peer, python, work) as (port, process, cold):
        figures.cold_start_s = cold
        path, body = peer.single(EMAIL)
        wrk.run(port, 32, 2, path, body)  # warm-up
        one = wrk.run(port, 1, max(3, seconds // 2), path, body)
        figures.rps_1, figures.p50_1_ms, figures.p99_1_ms = one.requests_per_second, one.p50_ms, one.p99_ms
        cpu_before = cpu_seconds(process.pid)
        many = wrk.run(port, 32, seconds, path, body)
        figures.cpu_us_per_request = (cpu_seconds(process.pid) - cpu_before) / many.requests * 1e6
        figures.rps_32, figures.p50_32_ms, figures.p99_32_ms = (
            many.requests_per_second,
            many.p50_ms,
            many.p99_ms,
        )
        if peer.batch is not None:
            batch_path, batch_body = peer.batch([EMAIL] * BATCH)
            figures.batch_emails_s = (
                wrk.run(port, 8, seconds, batch_path, batch_body).requests_per_second * BATCH
            )
        request = http_request("POST", path, body, {"Content-Type": "application/json"})
        for rate in OPEN_LOOP_RATES:
            cpu_before = cpu_seconds(process.pid)
            result = run_load(open_loop(HOST, port, [request], rate, 5))
            # What a request costs when requests arrive one by one (the server idles between
            # them) rather than queued behind each other, as in the 32-connection run.
            cpu_us = (cpu_seconds(process.pid) - cpu_before) / max(1, result.ok) * 1e6
            share = result.ok / max(1, int(rate * 5))
            figures.open_loop[rate] = (share, result.percentile(0.99) * 1000, cpu_us)
        figures.rss_mb = rss_mb(process.pid)
    return figures


COLUMNS: list[tuple[str, Callable[[Figures], float], str]] = [
    ("req/s @1", lambda f: f.rps_1, "{:,.0f}"),
    ("p50 ms @1", lambda f: f.p50_1_ms, "{:.2f}"),
    ("p99 ms @1", lambda f: f.p99_1_ms, "{:.2f}"),
    ("req/s @32", lambda f: f.rps_32, "{:,.0f}"),
    ("p50 ms @32", lambda f: f.p50_32_ms, "{:.1f}"),
    ("p99 ms @32", lambda f: f.p99_32_ms, "{:.1f}"),
    ("e-mails/s, batch 32", lambda f: f.batch_emails_s, "{:,.0f}"),
    ("CPU µs/req", lambda f: f.cpu_us_per_request, "{:,.0f}"),
    ("cold start s", lambda f: f.cold_start_s, "{:.2f}"),
    ("RSS MB", lambda f: f.rss_mb, "{:.0f}"),
]


def _median(values: list[float]) -> float:
    present = [v for v in values if v == v]  # NaN != NaN
    return statistics.median(present) if present else float("nan")


def report(results: dict[str, list[Figures]]) -> None:
    rates = " | ".join(f"open {r}/s: 2xx, p99 ms, CPU µs/req" for r in OPEN_LOOP_RATES)
    print(f"\n| system | {' | '.join(c for c, _, _ in COLUMNS)} | {rates} |")
    print("|---|" + "---:|" * (len(COLUMNS) + len(OPEN_LOOP_RATES)))
    for name, rounds in results.items():
        cells = [fmt.format(_median([get(f) for f in rounds])) for _, get, fmt in COLUMNS]
        for rate in OPEN_LOOP_RATES:
            share = _median([f.open_loop[rate][0] for f in rounds])
            p99 = _median([f.open_loop[rate][1] for f in rounds])
            cpu_us = _median([f.open_loop[rate][2] for f in rounds])
            cells.append(f"{share:.1%}, {p99:.0f}, {cpu_us:,.0f}")
        print(f"| {name} | {' | '.join(cells)} |")
    ours = results.get("scamguard")
    if ours:
        mine = _median([f.rps_32 for f in ours])
        print()
        for name, rounds in results.items():
            if name != "scamguard":
                theirs = _median([f.rps_32 for f in rounds])
                print(f"scamguard / {name}: {mine / theirs:.2f}x req/s at 32 connections")
        single = _median([f.rps_32 for f in ours])
        batch = _median([f.batch_emails_s for f in ours])
        print(f"scamguard batch of {BATCH}: {batch / single:.2f}x the single-e-mail throughput in e-mails/s")
    print("\nnoise: spread of req/s @32 between rounds (max-min)/median:")
    for name, rounds in results.items():
        values = [f.rps_32 for f in rounds]
        spread = (max(values) - min(values)) / _median(values) if len(values) > 1 else 0.0
        print(f"  {name}: {spread:.0%} ({' '.join(f'{v:,.0f}' for v in values)})")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--seconds", type=int, default=8, help="seconds per closed-loop run at 32 connections"
    )
    parser.add_argument("--only", nargs="*", choices=list(PEERS), help="these systems only")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "scamguard-peers")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    _write(work, "fastapi_app.py", FASTAPI_APP)
    _write(work, "kserve_app.py", KSERVE_APP)
    _write(work, "bento_app.py", BENTO_APP)
    _write(work, "constant.py", ASGI_CONSTANT)
    names = args.only or list(PEERS)
    pythons = {name: environment(PEERS[name], work) for name in names}
    trainer = next((pythons[n] for n in names if SKLEARN in PEERS[n].packages), None)
    if trainer is not None:
        train_peer_model(work, trainer)
    results: dict[str, list[Figures]] = {}
    for r in range(args.rounds):
        for name in names:
            figures = measure(PEERS[name], pythons[name], work, args.seconds)
            results.setdefault(name, []).append(figures)
            print(
                f"round {r + 1} {name:<16} {figures.rps_32:8,.0f} req/s @32  "
                f"p99 {figures.p99_32_ms:6.1f} ms  cold {figures.cold_start_s:.2f} s",
                flush=True,
            )
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
