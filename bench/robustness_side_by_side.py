"""accord's robust rules and Flower 1.42's robust strategies on the same attacks.

One command runs both halves of the comparison (issue 10) and prints the table::

    .venv/bin/python bench/robustness_side_by_side.py   # ~20 min on 2 shared cores

1. writes the digits federation of :data:`peer_data.DIGITS_TOML` (``examples/digits``
   without server momentum, ``trim = 0.2``; 20 rounds, seed 1) to
   ``bench/results-raw/robustness-peer/``;
2. runs accord as a user does: ``python -m accord evaluate robustness fed.toml
   --attacks ... --defences mean,median,trimmed_mean,krum,bulyan,centered_clip
   --malicious 2 --json`` (each cell a recorded simulation);
3. exports each cell's data from accord's pipeline (``peer_data.export_federation``:
   the same sites, rows, test set, malicious sites and trigger);
4. runs ``bench/flower_robustness.py`` in Flower's venv (``bench/.venv-flower``):
   ``FedAvg``, ``FedMedian``, ``FedTrimmedAvg(beta=0.2)``,
   ``Krum(num_malicious_nodes=2)``, ``Bulyan(num_malicious_nodes=1)`` on the same
   attacks, with accord's attack code and accord's task and seeds;
5. prints the side-by-side table (markdown) and, last, one JSON line with every cell.

Pairs: accord ``mean`` / Flower ``FedAvg``, ``median`` / ``FedMedian``,
``trimmed_mean`` / ``FedTrimmedAvg``, ``krum`` / ``Krum``, ``bulyan`` / ``Bulyan``;
``centered_clip`` (accord's recommendation) has no Flower counterpart. accord's
``krum`` and ``bulyan`` take their default ``attackers`` (the largest their bound
allows for 10 updates: 3 and 1); Flower's Krum is told the true 2, and Bulyan can
be given at most 1 with 10 clients (it needs ``n >= 4f + 3``). accord's defaults
also include ``[strategy] max_norm_ratio = 10`` (an update above 10 x the round's
median norm is refused) with every rule; Flower has no such check.

Fails with a message naming ``bash bench/setup-flower.sh`` when Flower's venv is
missing (``peer.FlowerVenvMissing``), before anything runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from peer import RAW_DIR, FlowerVenvMissing, PeerError, run_peer_script, venv_python
from peer_data import digits_federation, export_federation

BENCH_DIR = Path(__file__).resolve().parent
ATTACKS = "sign_flip,scaling,gaussian,alie,ipm,min_max,label_flip,scaling+backdoor"
PAIRS = (
    ("mean", "FedAvg"),
    ("median", "FedMedian"),
    ("trimmed_mean", "FedTrimmedAvg"),
    ("krum", "Krum"),
    ("bulyan", "Bulyan"),
    ("centered_clip", None),
)


def run_accord(fed: Path, attacks: str, malicious: int) -> list[dict[str, Any]]:
    """``accord evaluate robustness`` in a subprocess; its cells."""
    defences = ",".join(a for a, _ in PAIRS)
    cmd = [
        sys.executable,
        "-m",
        "accord",
        "evaluate",
        "robustness",
        str(fed),
        "--attacks",
        attacks,
        "--defences",
        defences,
        "--malicious",
        str(malicious),
        "--plot",
        str(fed.parent / "accord-matrix.png"),
        "--json",
    ]
    err = fed.parent / "accord.err"
    with err.open("w") as stderr:
        done = subprocess.run(
            cmd, cwd=fed.parent, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    if done.returncode != 0:
        tail = "\n".join(err.read_text().splitlines()[-15:])
        raise SystemExit(
            f"accord evaluate robustness exited {done.returncode}:\n{tail}"
        )
    cells: list[dict[str, Any]] = json.loads(done.stdout)["cells"]
    return cells


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{100 * float(value):.1f}"


def table(
    accord: list[dict[str, Any]], flower: list[dict[str, Any]], attacks: list[str]
) -> str:
    """The markdown table: per attack and pair, clean / under attack / backdoor."""
    a = {(c["attack"], c["defence"]): c for c in accord}
    f = {(c["attack"], c["strategy"]): c for c in flower}
    head = (
        "| attack | accord rule | clean | under attack | backdoor | "
        "Flower strategy | clean | under attack | backdoor |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for attack in attacks:
        for rule, strategy in PAIRS:
            ac, aa = a.get(("none", rule), {}), a.get((attack, rule), {})
            fc = f.get(("none", strategy), {}) if strategy else {}
            fa = f.get((attack, strategy), {}) if strategy else {}
            rows.append(
                f"| {attack} | {rule} | {_pct(ac.get('accuracy'))} | "
                f"{_pct(aa.get('accuracy'))} | {_pct(aa.get('backdoor_success'))} | "
                f"{strategy or '(none)'} | {_pct(fc.get('accuracy'))} | "
                f"{_pct(fa.get('accuracy'))} | {_pct(fa.get('backdoor_success'))} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run both halves; print the table and the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacks", default=ATTACKS)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--malicious", type=int, default=2)
    ap.add_argument("--krum-f", type=int, default=2)
    ap.add_argument("--bulyan-f", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3600, help="Flower's, seconds")
    ns = ap.parse_args(argv)
    try:
        venv_python()
    except FlowerVenvMissing as exc:
        print(f"robustness_side_by_side: {exc}", file=sys.stderr)
        return 3
    work = RAW_DIR / "robustness-peer"
    shutil.rmtree(work, ignore_errors=True)
    fed = digits_federation(work, name="digits-peer", rounds=ns.rounds, seed=ns.seed)
    attacks = [a for a in ns.attacks.split(",") if a and a != "none"]
    t0 = time.perf_counter()
    print(f"accord: {len(attacks) + 1} attacks x {len(PAIRS)} rules", file=sys.stderr)
    accord = run_accord(fed, ",".join(attacks), ns.malicious)
    accord_s = time.perf_counter() - t0

    from accord.config import load_config

    manifest = export_federation(
        load_config(fed), attacks, work / "export", malicious=ns.malicious
    )
    print("Flower: the same cells in bench/.venv-flower", file=sys.stderr)
    t1 = time.perf_counter()
    try:
        (flower,) = run_peer_script(
            BENCH_DIR / "flower_robustness.py",
            [
                "--manifest",
                str(manifest),
                "--krum-f",
                str(ns.krum_f),
                "--bulyan-f",
                str(ns.bulyan_f),
            ],
            repeats=1,
            tag="side-by-side",
            timeout_s=ns.timeout,
        )
    except PeerError as exc:
        print(f"robustness_side_by_side: {exc}", file=sys.stderr)
        return 1
    flower_s = time.perf_counter() - t1
    print(table(accord, flower["cells"], attacks))
    out = {
        "workload": "robustness_side_by_side",
        "rounds": ns.rounds,
        "seed": ns.seed,
        "malicious": ns.malicious,
        "flwr": flower.get("flwr"),
        "krum_f": ns.krum_f,
        "bulyan_f": ns.bulyan_f,
        "accord_s": round(accord_s, 1),
        "flower_s": round(flower_s, 1),
        "load_avg": os.getloadavg(),
        "accord": accord,
        "flower": flower["cells"],
    }
    (RAW_DIR / "robustness-side-by-side.json").write_text(json.dumps(out))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
