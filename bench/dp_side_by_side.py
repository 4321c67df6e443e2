"""accord's participant-level DP beside Flower 1.42's central DP, same settings.

One command runs both halves of the comparison (issue 9) and prints the table::

    .venv/bin/python bench/dp_side_by_side.py   # 3-6 min on 2 shared cores

Settings (both sides): the digits federation of :data:`peer_data.DIGITS_TOML`
(10 sites, Dirichlet alpha = 0.5, the example's PyTorch MLP, no server momentum),
``m = 5`` of the 10 sites sampled per round, 20 rounds, update clip ``C = 0.3``
(L2, over the whole update), noise multipliers ``z`` in 0.5, 1, 2 (and 0: no
DP), delta = 1e-5, uniform weights, Gaussian noise of ``z C`` on the sum, divided by
``m``.

1. accord as a user runs it: ``python -m accord simulate fed.toml --json`` with
   ``[selection] fraction = 0.5`` and ``[privacy] level = "participant"``,
   ``noise_multiplier = z``, ``clip = 0.3`` (accountant ``pld``, the default), and
   ``noise_seed`` so that the run repeats; its final accuracy and the epsilon it
   recorded for round 20.
2. Flower: ``bench/flower_dp.py`` in ``bench/.venv-flower`` on the same exported
   data: ``DifferentialPrivacyServerSideFixedClipping`` around uniform-weight
   ``FedAvg``; its final accuracy and what it reports. By default Flower reports no
   epsilon; when its optional accountant can be loaded (the ``flwr[dp]`` extra's
   ``dp-accounting`` in ``bench/.flower-dp``, see ``bench/README.md``) the script
   also runs it and reports the epsilon it logs.
3. accord's accountant on Flower's exact mechanism (``accord.privacy``): ``T = 20``
   rounds of the Gaussian mechanism at ``z``, (a) with each site sampled at
   ``q = m / n`` (Poisson, as accord accounts its own runs; PLD and RDP) and (b)
   without amplification by sampling (as Flower's accountant assumes; RDP, which
   is what Flower's ``RdpAccountant`` computes, and PLD).

Prints the table (markdown) and, last, one JSON line. Fails with a message naming
``bash bench/setup-flower.sh`` when Flower's venv is missing.
"""

from __future__ import annotations

import argparse
import json
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
DP_EXTRA_DIR = BENCH_DIR / ".flower-dp"

PRIVACY = """
[selection]
fraction = {fraction}
{privacy}"""
PARTICIPANT_DP = """
[privacy]
level = "participant"
noise_multiplier = {z}
clip = {clip}
delta = {delta}
noise_seed = {seed}
"""


def run_accord(fed: Path) -> dict[str, Any]:
    """``accord simulate fed.toml --json`` in a subprocess: final accuracy, epsilon."""
    err = fed.parent / "accord.err"
    with err.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "accord", "simulate", str(fed), "--json"],
            cwd=fed.parent,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    if done.returncode != 0:
        tail = "\n".join(err.read_text().splitlines()[-15:])
        raise SystemExit(f"accord simulate exited {done.returncode}:\n{tail}")
    run = json.loads(done.stdout)
    last = run["rounds"][-1]
    return {
        "accuracy": last["metrics"].get("central.accuracy"),
        "epsilon": last.get("epsilon"),
        "rounds": len(run["rounds"]),
        "run_id": run["run_id"],
    }


def accountant_figures(
    z: float, q: float, rounds: int, delta: float
) -> dict[str, float]:
    """Accord's accountant on ``rounds`` Gaussian releases at ``z``: four epsilons."""
    from accord.privacy.accountant import epsilon_of
    from accord.privacy.events import gaussian_event, participant_round_event

    sampled = [(participant_round_event(z, q), rounds)]
    plain = [(gaussian_event(z), rounds)]
    return {
        "sampled_pld": epsilon_of(sampled, delta, kind="pld"),
        "sampled_rdp": epsilon_of(sampled, delta, kind="rdp"),
        "no_amplification_rdp": epsilon_of(plain, delta, kind="rdp"),
        "no_amplification_pld": epsilon_of(plain, delta, kind="pld"),
    }


def _f(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table, one row per noise multiplier."""
    out = [
        "| z | accord accuracy | accord's epsilon (reported, PLD, q = m/n) | "
        "Flower accuracy | Flower's epsilon (default) | Flower's epsilon "
        "(optional RdpAccountant) | accord's accountant, Flower's mechanism: "
        "q = m/n, RDP | no amplification, RDP | no amplification, PLD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = r["accountant"] or {}
        missing = "not run" if r["z"] else ""
        out.append(
            f"| {r['z']:g} | {_f(r['accord']['accuracy'], 3)} | "
            f"{_f(r['accord']['epsilon']) or '∞ (no DP)'} | "
            f"{_f(r['flower'].get('accuracy'), 3)} | "
            f"{'none' if r['z'] else '∞ (no DP)'} | "
            f"{_f(r['flower'].get('flower_epsilon')) or missing} | "
            f"{_f(acc.get('sampled_rdp'))} | {_f(acc.get('no_amplification_rdp'))} | "
            f"{_f(acc.get('no_amplification_pld'))} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run both halves; print the table and the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise-multipliers", default="0,0.5,1.0,2.0")
    ap.add_argument("--clip", type=float, default=0.3)
    ap.add_argument("--sampled", type=int, default=5, help="sites per round (of 10)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800, help="Flower's, seconds")
    ns = ap.parse_args(argv)
    try:
        venv_python()
    except FlowerVenvMissing as exc:
        print(f"dp_side_by_side: {exc}", file=sys.stderr)
        return 3
    sites = 10
    zs = [float(z) for z in ns.noise_multipliers.split(",")]
    work = RAW_DIR / "dp-peer"
    shutil.rmtree(work, ignore_errors=True)
    fraction = ns.sampled / sites
    t0 = time.perf_counter()
    accord: dict[float, dict[str, Any]] = {}
    for z in zs:
        privacy = (
            ""
            if z == 0
            else PARTICIPANT_DP.format(z=z, clip=ns.clip, delta=ns.delta, seed=ns.seed)
        )
        fed = digits_federation(
            work / f"z{z:g}",
            name=f"digits-dp-z{z:g}",
            rounds=ns.rounds,
            seed=ns.seed,
            extra=PRIVACY.format(fraction=fraction, privacy=privacy),
        )
        print(f"accord: z = {z:g}", file=sys.stderr)
        accord[z] = run_accord(fed)
    accord_s = time.perf_counter() - t0

    from accord.config import load_config

    plain = digits_federation(
        work / "export", name="digits-dp-data", rounds=ns.rounds, seed=ns.seed
    )
    manifest = export_federation(load_config(plain), [], work / "export")
    args = [
        "--manifest",
        str(manifest),
        "--noise-multipliers",
        ns.noise_multipliers,
        "--clip",
        str(ns.clip),
        "--sampled",
        str(ns.sampled),
        "--rounds",
        str(ns.rounds),
        "--delta",
        str(ns.delta),
    ]
    if (DP_EXTRA_DIR / "dp_accounting").is_dir():
        args += ["--accountant", "--dp-path", str(DP_EXTRA_DIR)]
    print("Flower: DifferentialPrivacyServerSideFixedClipping", file=sys.stderr)
    t1 = time.perf_counter()
    try:
        (flower,) = run_peer_script(
            BENCH_DIR / "flower_dp.py",
            args,
            repeats=1,
            tag="side-by-side",
            timeout_s=ns.timeout,
        )
    except PeerError as exc:
        print(f"dp_side_by_side: {exc}", file=sys.stderr)
        return 1
    flower_s = time.perf_counter() - t1
    cells = flower["cells"]
    rows = []
    for z in zs:
        main_cell = next(
            (c for c in cells if c["noise_multiplier"] == z and c["accountant"]),
            next(c for c in cells if c["noise_multiplier"] == z),
        )
        rows.append(
            {
                "z": z,
                "accord": accord[z],
                "flower": main_cell,
                "accountant": None
                if z == 0
                else accountant_figures(z, fraction, ns.rounds, ns.delta),
            }
        )
    print(table(rows))
    default_logs = [
        c for c in cells if c["noise_multiplier"] > 0 and not c["accountant"]
    ]
    out = {
        "workload": "dp_side_by_side",
        "flwr": flower.get("flwr"),
        "sites": sites,
        "sampled": ns.sampled,
        "rounds": ns.rounds,
        "clip": ns.clip,
        "delta": ns.delta,
        "seed": ns.seed,
        "flower_accountant_run": bool(flower.get("accountant")),
        "flower_default_log": default_logs[:1],
        "accord_s": round(accord_s, 1),
        "flower_s": round(flower_s, 1),
        "load_avg": os.getloadavg(),
        "rows": rows,
        "flower_cells": cells,
    }
    (RAW_DIR / "dp-side-by-side.json").write_text(json.dumps(out))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
