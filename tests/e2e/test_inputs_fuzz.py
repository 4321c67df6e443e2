"""Fuzzing the local inputs: fed.toml and csv: data, as bytes an operator may give.

The property, for every input: the command exits 0 or 2; on 2 it prints one
readable line (``error: ...``, printable, bounded) and no traceback; and it ends
within a bound that only a hang could miss. Most examples run the CLI's own error
handling in-process (:func:`accord.cli.errors.reported` around what the command
calls first): fast. A few go through ``python -m accord simulate`` in a
subprocess, the whole way. Deterministic: hypothesis derandomized.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord.cli.errors import reported
from accord.config import load_config
from accord.data.preprocess import Encoder, extract_features
from accord.participant.data import load_local_data

#: No input may take longer than this to be accepted or refused (it takes
#: milliseconds; the bound only catches a hang, on a loaded 2-core machine).
WITHIN_S = 20.0
#: The same through the CLI: a new interpreter, imports, a one-round run.
CLI_WITHIN_S = 60.0
#: The longest error line: excerpts keep messages far below this.
MAX_LINE = 1500

#: Candidate TOML literals per key: valid ones, and the wrong types, bounds and
#: non-finite values an operator could write.
VALUES: dict[str, dict[str, list[str]]] = {
    "federation": {
        "rounds": ["1", "0", "true", "1.0", '"1"', "100001"],
        "seed": ["0", "-1", "9223372036854775808", "nan"],
        "name": ['"x"', '""', '"' + "n" * 300 + '"'],
    },
    "data": {
        "sites": ["2", "0", "false", "2.0"],
        "partition": ['"iid"', '"dirichlet"', '"nope"', "1"],
        "alpha": ["0.5", "0", "inf", "-inf", "nan"],
        "test_fraction": ["0.2", "1", "nan", "-0.0"],
        "options": ["{ rows = 60 }", "{ rows = 0 }", "{ rows = true }", "{ x = 1 }"],
        "dataset": ['"synthetic"', '"csv:/dev/zero"', '"nope"', '""'],
    },
    "train": {
        "learning_rate": ["0.05", "inf", "nan", "-inf", "0", "-1", "true", '"0.1"'],
        "epochs": ["1", "0", "false", "1e3"],
        "batch_size": ["8", "0", "-3", "true"],
    },
    "round": {
        "deadline_s": ["60", "0", "inf", "true", "1e300"],
        "quorum": ["0.5", "0", "2", "nan"],
    },
    "deployment": {"grace_s": ["false", "true", "0", "-1", "1e308", "nan"]},
    "strategy": {"aggregation": ['"mean"', '"median"', '"bogus"']},
    "selection": {"fraction": ["1.0", "0", "1.5"]},
}

BASE = {
    "federation": {"rounds": "1", "seed": "3"},
    "data": {"dataset": '"synthetic"', "sites": "2", "options": "{ rows = 60 }"},
    "task": {"factory": '"accord.task.numpy_task:softmax_regression"'},
    "evaluation": {"federated": "false"},
    "simulation": {"workers": "0"},
    "store": {"checkpoints": "false"},
}


@st.composite
def fed_tomls(draw: st.DrawFn) -> bytes:
    """A fed.toml: the base document with some keys changed, maybe damaged."""
    doc = {section: dict(keys) for section, keys in BASE.items()}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from(sorted(VALUES)))
        key = draw(st.sampled_from(sorted(VALUES[section])))
        doc.setdefault(section, {})[key] = draw(st.sampled_from(VALUES[section][key]))
    depth = draw(st.sampled_from([0, 0, 0, 31, 40, 2000]))
    if depth:
        doc["task"]["options"] = "{a = " * depth + "1" + "}" * depth
    text = "".join(
        f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for section, keys in doc.items()
    ).encode()
    damage = draw(st.sampled_from(["none", "none", "bytes", "text"]))
    if damage == "none":
        return text
    at = draw(st.integers(0, len(text)))
    junk = (
        draw(st.binary(min_size=1, max_size=16))
        if damage == "bytes"
        else draw(st.text(min_size=1, max_size=16)).encode()
    )
    return text[:at] + junk + text[at:]


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """A CSV (bytes) and the target column to ask for."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)), "y"
    names = draw(
        st.lists(
            st.one_of(
                st.sampled_from(["x", "z", "w"]),
                st.text(
                    alphabet=st.characters(blacklist_characters=',"\r\n'),
                    min_size=1,
                    max_size=12,
                ),
            ),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    columns = [*names, "y"]
    cell = st.one_of(
        st.integers(-1000, 1000).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["", "inf", "-inf", "nan", "1e308", "abc", "1e400"]),
    )
    rows = draw(st.integers(0, 40))
    lines = [",".join(columns)]
    for i in range(rows):
        cells = [draw(cell) for _ in names]
        lines.append(",".join([*cells, str(i % 2)]))
    target = draw(st.sampled_from(["y", "y", "y", names[0], "absent"]))
    return ("\n".join(lines) + "\n").encode(), target


def exit_of(action: Callable[[], object]) -> tuple[int, str]:
    """Run ``action`` as a command would: its exit code and what it printed."""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            with reported():
                action()
        except typer.Exit as stop:
            code = stop.exit_code
    return code, err.getvalue()


def assert_clean(
    code: int, stderr: str, elapsed: float, *, within: float = WITHIN_S
) -> None:
    event(f"exit {code}")  # --hypothesis-show-statistics: both kinds are drawn
    assert elapsed < within, f"took {elapsed:.1f} s"
    assert "Traceback" not in stderr, stderr
    if code == 0:
        return
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert lines[0].isprintable() and len(lines[0]) < MAX_LINE, lines[0][:300]


FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(FUZZ, max_examples=250)
@given(doc=fed_tomls())
def test_fed_toml_is_accepted_or_refused_in_one_line(
    tmp_path: Path, doc: bytes
) -> None:
    path = tmp_path / "fed.toml"
    path.write_bytes(doc)

    def validate() -> None:
        cfg = load_config(path)
        # What the store and the workers do with it next: JSON, no inf/nan.
        json.dumps(cfg.to_json_dict(), allow_nan=False)

    start = time.monotonic()
    code, stderr = exit_of(validate)

    assert_clean(code, stderr, time.monotonic() - start)


@settings(FUZZ, max_examples=80)
@given(csv=csv_files())
def test_csv_data_is_loaded_finite_or_refused_in_one_line(
    tmp_path: Path, csv: tuple[bytes, str]
) -> None:
    data, target = csv
    path = tmp_path / "site.csv"
    path.write_bytes(data)
    loaded = []

    def load() -> None:
        loaded.append(load_local_data(f"csv:{path}", options={"target": target}))

    start = time.monotonic()
    code, stderr = exit_of(load)

    assert_clean(code, stderr, time.monotonic() - start)
    if loaded:  # accepted: what training will see, once encoded, is finite
        features = extract_features(loaded[0].table)
        encoded = Encoder.fit([features]).transform(features)
        assert np.isfinite(encoded).all()


def simulate_cli(config: Path, store: Path) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "simulate",
            str(config),
            "--json",
            "--store",
            f"sqlite:///{store}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=config.parent,
    )
    return proc.returncode, proc.stderr, time.monotonic() - start


@pytest.mark.slow
@settings(FUZZ, max_examples=4)
@given(doc=fed_tomls())
def test_fed_toml_through_the_cli(
    tmp_path_factory: pytest.TempPathFactory, doc: bytes
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "fed.toml").write_bytes(doc)

    code, stderr, elapsed = simulate_cli(folder / "fed.toml", folder / "runs.db")

    assert_clean(code, stderr, elapsed, within=CLI_WITHIN_S)


@pytest.mark.slow
@settings(FUZZ, max_examples=3)
@given(csv=csv_files())
def test_csv_data_through_the_cli(
    tmp_path_factory: pytest.TempPathFactory, csv: tuple[bytes, str]
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    data, target = csv
    (folder / "site.csv").write_bytes(data)
    (folder / "fed.toml").write_text(
        '[federation]\nrounds = 1\n[data]\ndataset = "csv:site.csv"\nsites = 1\n'
        f"options = {{ target = {json.dumps(target)} }}\nmin_site_size = 1\n"
        '[task]\nfactory = "accord.task.numpy_task:softmax_regression"\n'
        "[evaluation]\nfederated = false\n[simulation]\nworkers = 0\n"
        "[store]\ncheckpoints = false\n"
    )

    code, stderr, elapsed = simulate_cli(folder / "fed.toml", folder / "runs.db")

    assert_clean(code, stderr, elapsed, within=CLI_WITHIN_S)
