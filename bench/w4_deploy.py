"""W4: W3 deployed: coordinator + 10 participants as processes on loopback, mutual TLS.

accord side: a federation CA and 11 certificates made with accord's PKI
(``accord.transport.pki``: ``init_ca``, a key and CSR per site, ``sign``) in a temp
folder; then ``python -m accord coordinator fed.toml --listen 127.0.0.1:0 --pki
coordinator --trust ca --json`` and 10 ``python -m accord participant --coordinator
localhost:PORT --identity site-XX --data sim:fed.toml#site-XX`` as separate OS
processes, every connection mutual TLS on loopback. The model: ``bench/tasks.py``'s
``NoiseTask``, 4 x 2.5M float32 (40 MB), no training (global model + cached noise,
like Flower's client); FedAvg; 5 rounds; store (SQLite) on, checkpoints on unless
``--no-checkpoints``; evaluation off. Round times come from the coordinator's
``--json`` document (a round: from dispatching the tasks to the round recorded in
the store); steady s/round = mean of rounds 2..5.

Memory: the coordinator's peak RSS (exact, ``getrusage`` of the child:
``ru_maxrss``) and peak PSS (sampled), and the peak summed PSS (and RSS) of all 11
processes, sampled every 0.25 s with psutil (as Flower's script does; reading the
smaps of 11 processes more often costs the run measurable CPU). CPU seconds per
process come from the same ``wait4`` rusage.

Raw copy, measured in the same run right after each accord run: the same traffic
between processes on 127.0.0.1 with plain TCP sockets and no framework: a server
process holds 40 MB, per round it sends them to each of 10 client processes at once
(a thread per connection) and each client sends its 40 MB back; a round ends when
the server has every reply (``sendall``/``recv_into``, no per-message copies).
Steady s/round = mean of rounds 2..5. The same copy wrapped in mutual TLS (Python's
``ssl``, the run's own certificates) is reported too, as the cost of encryption alone,
and so is the same traffic over bare ``grpcio`` with mutual TLS (``grpc_copy.py``: 1 MiB
messages both ways, no framework), as the cost of the transport accord is built on.

Flower side (``--peer``): ``w_deploy.py`` (1 SuperLink + 10 SuperNodes, insecure
HTTP), about 2 minutes a run.

Run: ``.venv/bin/python bench/w4_deploy.py [--repeats 3] [--peer [--peer-repeats 1]]``.
One JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc_copy
import psutil
from common import (
    BENCH_DIR,
    MIB,
    RAW_DIR,
    alternate,
    machine,
    median,
    stderr,
    steady,
)

ROUNDS = 5
CLIENTS = 10
TENSORS = 4
PARAMS = 10_000_000
MODEL_BYTES = PARAMS * 4
PASSPHRASE = b"w4 bench passphrase, not a secret"


def sites(n: int) -> list[str]:
    return [f"site-{i:02d}" for i in range(n)]


def config(
    *,
    clients: int,
    params: int,
    tensors: int,
    rounds: int,
    ckpt: bool,
    name: str = "bench-w4-deploy",
) -> str:
    names = ", ".join(f'"{s}"' for s in sites(clients))
    return f"""
[federation]
name = "{name}"
rounds = {rounds}
seed = 0

[data]
dataset = "synthetic"
partition = "iid"
sites = {clients}
holdout_fraction = 0.0
min_site_size = 1
options = {{ rows = {max(100 * clients, 1000)}, features = 4, classes = 2 }}

[task]
factory = "tasks:build"
options = {{ params = {params}, tensors = {tensors} }}

[round]
deadline_s = 600

[evaluation]
central = false
federated = false
baselines = false

[store]
directory = "runs"
checkpoints = {"true" if ckpt else "false"}

[deployment]
participants = [{names}]
wait_s = 300
"""


def make_folder(toml: str, clients: int) -> Path:
    """fed.toml, tasks.py and a federation CA with 1 + ``clients`` certificates."""
    from accord.transport import pki

    folder = Path(tempfile.mkdtemp(prefix="accord-w4-"))
    (folder / "fed.toml").write_text(toml, encoding="utf-8")
    shutil.copy(BENCH_DIR / "tasks.py", folder / "tasks.py")
    ca = folder / "ca"
    pki.init_ca(ca, federation="bench-w4", passphrase=PASSPHRASE)
    requests = [("coordinator", "coordinator", ["localhost", "127.0.0.1"])]
    requests += [(s, "participant", []) for s in sites(clients)]
    for name, role, hosts in requests:
        csr = pki.request(folder / name, name, role=role, hosts=hosts)  # type: ignore[arg-type]
        pki.sign(ca, csr, passphrase=PASSPHRASE, role=role)  # type: ignore[arg-type]
    return folder


# Measuring processes.


class Watched:
    """A child process, reaped with ``wait4`` for its exact peak RSS and CPU time."""

    def __init__(self, name: str, cmd: Sequence[str], *, cwd: Path, out: Any) -> None:
        self.name = name
        err = (RAW_DIR / f"accord-w4-{name}.err").open("w")
        self.proc = subprocess.Popen(
            list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        err.close()
        self.ps = psutil.Process(self.proc.pid)
        self.rc: int | None = None
        self.maxrss_mb = 0.0
        self.cpu_s = 0.0
        self.peak_pss = 0
        self.peak_rss = 0
        self.peak_anon = 0  # RssAnon: heap, buffers (RssFile: mapped files, libraries)
        self.peak_file = 0

    def sample_status(self) -> None:
        """Keep the peaks of RssAnon and RssFile from /proc/PID/status."""
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "RssAnon":
                self.peak_anon = max(self.peak_anon, int(value.split()[0]) * 1024)
            elif key == "RssFile":
                self.peak_file = max(self.peak_file, int(value.split()[0]) * 1024)

    def poll(self) -> int | None:
        """The exit code once the process ended (reaping it), else None."""
        if self.rc is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
                self.proc.returncode = self.rc
                self.maxrss_mb = usage.ru_maxrss / 1024
                self.cpu_s = usage.ru_utime + usage.ru_stime
        return self.rc

    def signal_kill(self) -> None:
        """Send SIGKILL unless reaped (os.kill: Popen's own would reap it first)."""
        if self.rc is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.poll() is None:
            self.signal_kill()
            while self.poll() is None:
                time.sleep(0.01)


class Sampler(threading.Thread):
    """Peak summed PSS/RSS of a set of processes, and each one's peak."""

    def __init__(
        self, procs: list[Watched], period: float = 0.25, min_available: int = 0
    ) -> None:
        super().__init__(daemon=True)
        self.procs = procs
        self.period = period
        self.min_available = min_available
        self.low_memory: str | None = None
        self.peak_pss = 0
        self.peak_rss = 0
        self._halt = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._halt.is_set():
            pss = rss = 0
            for w in list(self.procs):
                try:
                    m = w.ps.memory_full_info()
                except (
                    psutil.NoSuchProcess,
                    psutil.AccessDenied,
                    psutil.ZombieProcess,
                ):
                    continue
                w.sample_status()
                w.peak_pss = max(w.peak_pss, m.pss)
                w.peak_rss = max(w.peak_rss, m.rss)
                pss += m.pss
                rss += m.rss
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            available = psutil.virtual_memory().available
            if available < self.min_available and self.low_memory is None:
                # A shared machine: stop before the kernel's OOM killer picks a victim.
                self.low_memory = f"only {available / MIB:.0f} MiB of memory left"
                for w in self.procs:
                    w.signal_kill()
            self._halt.wait(self.period)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._halt.set()
        self.join()


def wait_all(procs: Sequence[Watched], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(w.poll() is None for w in procs):
        if time.monotonic() > deadline:
            for w in procs:
                w.kill()
            raise RuntimeError(f"processes still running after {timeout_s:.0f} s")
        time.sleep(0.02)


def run_deployment(
    folder: Path,
    *,
    clients: int,
    tag: str,
    timeout_s: float = 900.0,
    min_available: int = 0,
    sample_period_s: float = 0.25,
) -> dict[str, Any]:
    """One run: the coordinator and ``clients`` participants; measured from here."""
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    port_file = folder / f"port-{tag}"
    port_file.unlink(missing_ok=True)
    py = [sys.executable, "-m", "accord"]
    out_p = RAW_DIR / f"accord-w4-{tag}.out"
    t0 = time.perf_counter()
    with out_p.open("w") as out:
        coordinator = Watched(
            f"{tag}-coordinator",
            [
                *py,
                "coordinator",
                "fed.toml",
                "--listen",
                "127.0.0.1:0",
                "--pki",
                "coordinator",
                "--trust",
                "ca",
                "--port-file",
                str(port_file),
                "--store",
                f"sqlite:///{folder}/store-{tag}.db",
                "--json",
            ],
            cwd=folder,
            out=out,
        )
    procs = [coordinator]
    sampler = Sampler(procs, sample_period_s, min_available=min_available)
    sampler.start()
    try:
        while not (port_file.exists() and port_file.read_text().strip()):
            if coordinator.poll() is not None:
                raise RuntimeError(f"the coordinator exited {coordinator.rc}")
            time.sleep(0.02)
        port = int(port_file.read_text())
        listening_s = time.perf_counter() - t0
        for s in sites(clients):
            procs.append(
                Watched(
                    f"{tag}-{s}",
                    [
                        *py,
                        "participant",
                        "--coordinator",
                        f"localhost:{port}",
                        "--identity",
                        s,
                        "--data",
                        f"sim:fed.toml#{s}",
                        "--site-log",
                        f"logs-{tag}/{s}.jsonl",
                    ],
                    cwd=folder,
                    out=subprocess.DEVNULL,
                )
            )
        wait_all(procs, timeout_s)
    finally:
        sampler.stop()
        for w in procs:
            w.kill()
    wall = time.perf_counter() - t0
    if sampler.low_memory:
        raise RuntimeError(f"run {tag} stopped: {sampler.low_memory}")
    bad = [(w.name, w.rc) for w in procs if w.rc != 0]
    if bad:
        raise RuntimeError(f"run {tag}: processes failed {bad}; see {RAW_DIR}")
    doc = json.loads(out_p.read_text())
    rounds = doc["rounds"]
    if [r["status"] for r in rounds] != ["completed"] * len(rounds) or any(
        r["succeeded"] != clients for r in rounds
    ):
        raise RuntimeError(f"run {tag}: rounds {rounds}")
    if doc["rejections"]:
        raise RuntimeError(f"run {tag}: refused messages {doc['rejections']}")
    parts = procs[1:]
    return {
        "round_s": [round(float(r["duration_s"]), 4) for r in rounds],
        "steady_s_per_round": round(steady([r["duration_s"] for r in rounds]), 4),
        "coordinator_listening_s": round(listening_s, 3),
        "process_wall_s": round(wall, 3),
        "coordinator_peak_rss_mb": round(coordinator.maxrss_mb, 1),
        "coordinator_peak_pss_mb": round(coordinator.peak_pss / MIB, 1),
        "coordinator_peak_rss_anon_mb": round(coordinator.peak_anon / MIB, 1),
        "coordinator_peak_rss_file_mb": round(coordinator.peak_file / MIB, 1),
        "participant_peak_rss_mb_max": round(max(w.maxrss_mb for w in parts), 1),
        "participants_peak_rss_mb": [round(w.maxrss_mb, 1) for w in parts],
        "participants_peak_rss_anon_mb": [round(w.peak_anon / MIB, 1) for w in parts],
        "participant_peak_pss_mb_max": round(max(w.peak_pss for w in parts) / MIB, 1),
        "tree_peak_pss_mb": round(sampler.peak_pss / MIB, 1),
        "tree_peak_rss_mb": round(sampler.peak_rss / MIB, 1),
        "coordinator_cpu_s": round(coordinator.cpu_s, 2),
        "participants_cpu_s": round(sum(w.cpu_s for w in parts), 2),
    }


# The raw socket copy.


def _recv_exact(sock: socket.socket, buf: bytearray) -> None:
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = sock.recv_into(view[got:])
        if not n:
            raise EOFError("peer closed the connection")
        got += n


def _tls_context(folder: Path, name: str, *, server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(folder / name / "cert.pem", folder / name / "key.pem")
    ctx.load_verify_locations(folder / name / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    if not server:
        ctx.check_hostname = True
    return ctx


def raw_server(nbytes: int, clients: int, rounds: int, tls: Path | None) -> None:
    """Serve ``rounds`` copies to ``clients`` connections; print each round's time."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=clients)
    print(listener.getsockname()[1], flush=True)
    ctx = _tls_context(tls, "coordinator", server=True) if tls else None
    conns: list[socket.socket] = []
    for _ in range(clients):
        conn, _addr = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(ctx.wrap_socket(conn, server_side=True) if ctx else conn)
    model = bytearray(os.urandom(nbytes))
    back = [bytearray(nbytes) for _ in conns]
    times: list[float] = []

    def one(i: int) -> None:
        conns[i].sendall(model)
        _recv_exact(conns[i], back[i])

    for _ in range(rounds):
        t = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        times.append(time.perf_counter() - t)
    for c in conns:
        c.close()
    print(json.dumps({"round_s": times}), flush=True)


def raw_client(
    port: int, name: str, nbytes: int, rounds: int, tls: Path | None
) -> None:
    """Receive ``nbytes`` and send them back, ``rounds`` times."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = _tls_context(tls, name, server=False)
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    buf = bytearray(nbytes)
    for _ in range(rounds):
        _recv_exact(sock, buf)
        sock.sendall(buf)
    sock.close()


def run_raw(
    folder: Path,
    *,
    clients: int,
    nbytes: int,
    rounds: int,
    tls: bool,
    grpc: bool = False,
) -> dict[str, Any]:
    """The raw (or bare gRPC) copy as separate processes; the server's round times."""
    me = [sys.executable, str(Path(__file__).resolve())]
    extra = ["--tls-dir", str(folder)] if tls or grpc else []
    kind = "grpc" if grpc else "raw"
    server = subprocess.Popen(
        [*me, f"--{kind}-server", "--clients", str(clients), "--bytes", str(nbytes)]
        + ["--rounds", str(rounds), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    procs = [
        subprocess.Popen(
            [*me, f"--{kind}-client", str(port), "--name", s, "--bytes", str(nbytes)]
            + ["--rounds", str(rounds), *extra]
        )
        for s in sites(clients)
    ]
    out, _ = server.communicate(timeout=600)
    codes = [p.wait(timeout=60) for p in procs]
    if server.returncode or any(codes):
        raise RuntimeError(f"raw copy failed: server {server.returncode}, {codes}")
    times = json.loads(out.strip().splitlines()[-1])["round_s"]
    return {
        "round_s": [round(t, 4) for t in times],
        "steady_s_per_round": round(steady(times), 4),
    }


# The workload.


def flower_run(i: int) -> dict[str, Any]:
    from peer import run_flower

    return run_flower("w_deploy.py", repeats=1, tag=f"r{i}", timeout_s=900)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="also run w_deploy.py")
    ap.add_argument("--peer-repeats", type=int, default=None)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--params", type=int, default=PARAMS)
    ap.add_argument("--tensors", type=int, default=TENSORS)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument(
        "--no-checkpoints", action="store_true", help="store.checkpoints = false"
    )
    ap.add_argument("--no-tls-raw", action="store_true", help="skip the TLS raw copy")
    ap.add_argument(
        "--no-grpc-copy", action="store_true", help="skip the bare gRPC (mTLS) copy"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument(
        "--sample-period",
        type=float,
        default=0.25,
        help="seconds between memory samples of accord's processes (each sample "
        "reads 11 smaps_rollup: CPU taken from the run it measures)",
    )
    # Internal: the raw copy's processes.
    ap.add_argument("--raw-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--raw-client", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--grpc-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--grpc-client", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--name", default="", help=argparse.SUPPRESS)
    ap.add_argument("--bytes", type=int, default=MODEL_BYTES, help=argparse.SUPPRESS)
    ap.add_argument("--tls-dir", type=Path, default=None, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.raw_server:
        raw_server(ns.bytes, ns.clients, ns.rounds, ns.tls_dir)
        return
    if ns.raw_client is not None:
        raw_client(ns.raw_client, ns.name, ns.bytes, ns.rounds, ns.tls_dir)
        return
    if ns.grpc_server:
        grpc_copy.serve(ns.bytes, ns.clients, ns.rounds, ns.tls_dir)
        return
    if ns.grpc_client is not None:
        grpc_copy.client(ns.grpc_client, ns.name, ns.bytes, ns.rounds, ns.tls_dir)
        return

    nbytes = ns.params * 4
    checkpoints = not ns.no_checkpoints
    toml = config(
        clients=ns.clients,
        params=ns.params,
        tensors=ns.tensors,
        rounds=ns.rounds,
        ckpt=checkpoints,
    )
    folder = make_folder(toml, ns.clients)
    raws: list[dict[str, Any]] = []
    raws_tls: list[dict[str, Any]] = []
    grpcs: list[dict[str, Any]] = []

    def accord_run(i: int) -> dict[str, Any]:
        r = run_deployment(
            folder, clients=ns.clients, tag=f"r{i}", sample_period_s=ns.sample_period
        )
        raw = run_raw(
            folder, clients=ns.clients, nbytes=nbytes, rounds=ns.rounds, tls=False
        )
        raws.append(raw)
        stderr(f"raw copy {i}: {json.dumps(raw)}")
        if not ns.no_tls_raw:
            raw_tls = run_raw(
                folder, clients=ns.clients, nbytes=nbytes, rounds=ns.rounds, tls=True
            )
            raws_tls.append(raw_tls)
            stderr(f"raw TLS copy {i}: {json.dumps(raw_tls)}")
        if not ns.no_grpc_copy:
            bare = run_raw(
                folder,
                clients=ns.clients,
                nbytes=nbytes,
                rounds=ns.rounds,
                tls=True,
                grpc=True,
            )
            grpcs.append(bare)
            stderr(f"bare gRPC copy {i}: {json.dumps(bare)}")
        return r

    try:
        ours, theirs = alternate(
            ns.repeats,
            accord_run,
            flower_run if ns.peer else None,
            peer_repeats=ns.peer_repeats,
            log=stderr,
        )
    finally:
        if not ns.keep:
            shutil.rmtree(folder, ignore_errors=True)

    def med(runs: Sequence[dict[str, Any]], key: str, digits: int = 4) -> float:
        return round(median([r[key] for r in runs]), digits)

    accord: dict[str, Any] = {
        k: med(ours, k)
        for k in (
            "steady_s_per_round",
            "coordinator_peak_rss_mb",
            "coordinator_peak_pss_mb",
            "coordinator_peak_rss_anon_mb",
            "coordinator_peak_rss_file_mb",
            "participant_peak_rss_mb_max",
            "participant_peak_pss_mb_max",
            "tree_peak_pss_mb",
            "tree_peak_rss_mb",
            "coordinator_listening_s",
            "process_wall_s",
            "coordinator_cpu_s",
            "participants_cpu_s",
        )
    }
    accord["first_round_s"] = round(median([r["round_s"][0] for r in ours]), 4)
    accord["coordinator_peak_rss_x_model"] = round(
        accord["coordinator_peak_rss_mb"] * MIB / nbytes, 2
    )
    accord["runs_steady_s_per_round"] = [r["steady_s_per_round"] for r in ours]
    accord["runs_round_s"] = [r["round_s"] for r in ours]
    raw = {
        "steady_s_per_round": med(raws, "steady_s_per_round"),
        "runs_steady_s_per_round": [r["steady_s_per_round"] for r in raws],
    }
    out: dict[str, Any] = {
        "workload": f"W4 {ns.params:,} float32 params ({ns.tensors} tensors), "
        f"coordinator + {ns.clients} participants as processes on loopback, "
        f"mutual TLS, no training, {ns.rounds} rounds",
        "notes": "accord: accord coordinator/participant CLI, certificates from "
        "accord's PKI, store SQLite, checkpoints "
        f"{'on' if checkpoints else 'off'}, eval off; steady = mean of rounds "
        "2..R; raw = plain TCP sockets between processes on 127.0.0.1, the same "
        "bytes per round (model to each client, update back), measured right after "
        "each accord run",
        "repeats": len(ours),
        "model_mib": round(nbytes / MIB, 2),
        "accord": accord,
        "raw_copy": raw,
    }
    paired = [
        a["steady_s_per_round"] / r["steady_s_per_round"]
        for a, r in zip(ours, raws, strict=True)
    ]
    ratios: dict[str, Any] = {
        "steady_round_accord_over_raw": round(
            accord["steady_s_per_round"] / raw["steady_s_per_round"], 2
        ),
        # each accord run over the raw copy measured right after it
        "runs_accord_over_raw": [round(x, 2) for x in paired],
        "median_of_paired_accord_over_raw": round(median(paired), 2),
    }
    if raws_tls:
        out["raw_tls_copy"] = {
            "steady_s_per_round": med(raws_tls, "steady_s_per_round"),
            "runs_steady_s_per_round": [r["steady_s_per_round"] for r in raws_tls],
        }
        ratios["steady_round_accord_over_raw_tls"] = round(
            accord["steady_s_per_round"] / out["raw_tls_copy"]["steady_s_per_round"],
            2,
        )
    if grpcs:
        out["grpc_tls_copy"] = {
            "steady_s_per_round": med(grpcs, "steady_s_per_round"),
            "runs_steady_s_per_round": [r["steady_s_per_round"] for r in grpcs],
        }
        ratios["steady_round_accord_over_grpc_tls"] = round(
            accord["steady_s_per_round"] / out["grpc_tls_copy"]["steady_s_per_round"],
            2,
        )
        if raws_tls:
            ratios["grpc_tls_copy_over_raw_tls"] = round(
                out["grpc_tls_copy"]["steady_s_per_round"]
                / out["raw_tls_copy"]["steady_s_per_round"],
                2,
            )
    targets = {"round_le_3x_raw_copy": ratios["steady_round_accord_over_raw"] <= 3}
    if theirs:
        from peer import median_of

        flower = {
            "steady_s_per_round": round(
                median_of(theirs, "s_per_round_mean_excl_first"), 4
            ),
            "first_round_s": round(median_of(theirs, "first_round_s"), 4),
            "peak_tree_pss_mb": round(median_of(theirs, "peak_tree_pss_mb"), 1),
            "peak_tree_rss_mb": round(median_of(theirs, "peak_tree_rss_mb"), 1),
            "wall_s_total": round(median_of(theirs, "wall_s_total"), 3),
            "runs_steady_s_per_round": [
                r["s_per_round_mean_excl_first"] for r in theirs
            ],
        }
        out["flower"] = flower
        ratios["steady_round_accord_over_flower"] = round(
            accord["steady_s_per_round"] / flower["steady_s_per_round"], 4
        )
        ratios["tree_peak_pss_accord_over_flower"] = round(
            accord["tree_peak_pss_mb"] / flower["peak_tree_pss_mb"], 4
        )
        targets["round_le_tenth_of_flower"] = (
            ratios["steady_round_accord_over_flower"] <= 0.1
        )
    out["ratios"] = ratios
    out["targets"] = targets
    out["machine"] = machine()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
