"""The federation accord simulates, written out for the Flower peer: the same rows.

Flower's venv (``bench/.venv-flower``) has no pandas, so it cannot load accord's
datasets; and a side-by-side comparison is only fair if both frameworks train on
exactly the same split. This module, run in accord's venv, builds each cell's data
the way ``accord simulate`` does (:func:`accord.simulation.context.build_context`
on the cell's configuration, poisoning included) and writes it as plain ``.npz``
arrays (read back with ``allow_pickle=False``) plus one ``manifest.json`` saying
what each attack does, who is malicious, the trigger, the task, the training
settings and the seed. The Flower scripts (``bench/flower_*.py``) read only that.

Data variants are shared between attacks: update attacks (ALIE, IPM, scaling, ...)
train on clean rows, so every attack maps to one of ``clean``, ``label_flip`` or
``backdoor`` data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accord.config import FedConfig
from accord.simulation.context import build_context
from accord.simulation.robustness import NO_ATTACK, cell_config

__all__ = ["DIGITS_TOML", "data_variant", "digits_federation", "export_federation"]


def data_variant(attack: str) -> str:
    """Which training rows an attack name needs: clean, label_flip or backdoor."""
    kind, _, extra = attack.partition("+")
    if kind == "label_flip":
        return "label_flip"
    if kind == "backdoor" or extra == "backdoor":
        return "backdoor"
    return "clean"


def _write_variant(config: FedConfig, path: Path) -> dict[str, Any]:
    """Build one cell's (poisoned) federation and write its arrays to ``path``."""
    ctx = build_context(config, poison=True)
    arrays: dict[str, np.ndarray] = {
        "test_x": np.ascontiguousarray(ctx.data.test.x, dtype=np.float32),
        "test_y": np.ascontiguousarray(ctx.data.test.y, dtype=np.int64),
    }
    for i, site in enumerate(ctx.data.sites):
        arrays[f"train_x_{i}"] = np.ascontiguousarray(site.train.x, dtype=np.float32)
        arrays[f"train_y_{i}"] = np.ascontiguousarray(site.train.y, dtype=np.int64)
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub wants *args
    names = ctx.participants
    trigger = ctx.trigger
    return {
        "info": {
            "name": ctx.data.info.name,
            "feature_shape": list(ctx.data.info.feature_shape),
            "class_names": list(ctx.data.info.class_names),
        },
        "sites": list(names),
        "malicious": [names.index(m) for m in ctx.malicious],
        "trigger": None
        if trigger is None
        else {
            "features": list(trigger.features),
            "value": trigger.value,
            "target": trigger.target,
            "fraction": trigger.fraction,
        },
    }


def export_federation(
    config: FedConfig,
    attacks: Sequence[str],
    out_dir: Path,
    *,
    malicious: int = 2,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write every attack's data and the manifest to ``out_dir``; the manifest path.

    ``config`` is the file the accord side runs (``accord evaluate robustness`` or
    ``accord simulate``); each attack's data is that of the cell
    :func:`~accord.simulation.robustness.cell_config` makes for it, with
    ``malicious`` attackers drawn by the file's seed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    variants: dict[str, str] = {}
    described: dict[str, dict[str, Any]] = {}
    common: dict[str, Any] = {}
    for attack in [NO_ATTACK, *(a for a in attacks if a != NO_ATTACK)]:
        cfg = cell_config(config, attack, "mean", malicious=malicious)
        variant = data_variant(attack) if attack != NO_ATTACK else "clean"
        file = f"data-{variant}.npz"
        meta = _write_variant(cfg, out_dir / file)
        variants[variant] = file
        common.setdefault("info", meta["info"])
        common.setdefault("sites", meta["sites"])
        update = None
        if cfg.attack is not None and cfg.attack.kind not in ("label_flip", "backdoor"):
            update = cfg.attack.model_dump(mode="json", exclude={"backdoor"})
        described[attack] = {
            "data": variant,
            "update": update,
            "malicious": meta["malicious"] if cfg.attack is not None else [],
            "trigger": meta["trigger"],
        }
    manifest = {
        "schema": "accord.peer-federation/1",
        "seed": config.federation.seed,
        "rounds": config.federation.rounds,
        "task": {
            "factory": config.task.factory,
            "options": dict(config.task.options),
            "base_dir": str(Path(config.base_dir).resolve()),
        },
        "train": {
            "epochs": config.train.epochs,
            "batch_size": config.train.batch_size,
            "learning_rate": config.train.learning_rate,
            "options": dict(config.train.options),
        },
        **common,
        "data": variants,
        "attacks": described,
        **(extra or {}),
    }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path


#: The digits federation both frameworks run: ``examples/digits`` (10 sites,
#: Dirichlet alpha = 0.5, its PyTorch MLP, 1 epoch of SGD lr 0.05 batch 32) with no
#: server momentum (Flower's robust and DP strategies have no server optimizer:
#: each round's model is the rule's output) and the trimmed mean cutting 2 of 10
#: per end (Flower's FedTrimmedAvg beta = 0.2). In process, no federated evaluation.
DIGITS_TOML = """\
[federation]
name = "{name}"
rounds = {rounds}
seed = {seed}

[data]
dataset = "digits"
partition = "dirichlet"
alpha = 0.5
sites = 10
min_site_size = 20

[task]
factory = "task:build"

[train]
epochs = 1
batch_size = 32
learning_rate = 0.05

[strategy]
server_optimizer = "sgd"
server_lr = 1.0
server_momentum = 0.0
trim = 0.2

[evaluation]
metric = "accuracy"
federated = false

[simulation]
workers = 0

[store]
directory = "{store}"
{extra}"""


def digits_federation(
    folder: Path, *, name: str, rounds: int, seed: int, extra: str = ""
) -> Path:
    """Write ``DIGITS_TOML`` and the example's ``task.py`` to ``folder``; fed.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    example = Path(__file__).resolve().parent.parent / "examples" / "digits"
    (folder / "task.py").write_text((example / "task.py").read_text())
    path = folder / "fed.toml"
    path.write_text(
        DIGITS_TOML.format(
            name=name, rounds=rounds, seed=seed, store=folder / "runs", extra=extra
        )
    )
    return path
