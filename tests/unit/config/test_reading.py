"""fed.toml as bytes: what cannot be a configuration gets one clear ConfigError.

Non-UTF-8 bytes, nesting past the bound (inline tables, arrays, dotted keys), inf
and nan, bools for numbers, FIFOs, devices and oversized files: each is refused
with a message that names the cause, never a traceback, a hang or a crash. Values
just inside each bound are accepted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from accord.config import load_config
from accord.config.reading import MAX_CONFIG_BYTES, MAX_DEPTH
from accord.errors import ConfigError

HEAD = '[data]\ndataset = "synthetic"\nsites = 3\n[task]\nfactory = "t:build"\n'


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "fed.toml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def nested_options(depth: int) -> str:
    """[task] options nested so that the innermost table is ``depth`` deep."""
    inner = depth - 2  # task is 1 deep, options 2
    return HEAD + "options = " + "{a = " * inner + "{}" + "}" * inner + "\n"


def test_non_utf8_bytes_name_the_offset(tmp_path: Path) -> None:
    before = HEAD.encode() + b'[federation]\nname = "'
    path = write(tmp_path, before + b'\xff\xfe"\n')

    offset = len(before)
    with pytest.raises(
        ConfigError, match=rf"not UTF-8 text \(byte 0xff at offset {offset}\)"
    ):
        load_config(path)


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1])
def test_nesting_is_accepted_up_to_the_bound(tmp_path: Path, depth: int) -> None:
    path = write(tmp_path, nested_options(depth))

    if depth <= MAX_DEPTH:
        assert load_config(path).task.options
    else:
        with pytest.raises(ConfigError, match=f"nest {depth} levels deep"):
            load_config(path)


@pytest.mark.parametrize(
    "value",
    ["{a = " * 1000 + "1" + "}" * 1000, "[" * 5000 + "]" * 5000],
    ids=["inline-tables", "arrays"],
)
def test_nesting_too_deep_for_the_parser_is_refused(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, HEAD + f"options = {value}\n")

    with pytest.raises(ConfigError, match=f"deeper than the {MAX_DEPTH} levels"):
        load_config(path)


def test_dotted_keys_nest_too(tmp_path: Path) -> None:
    # No bracket at all, yet 3000 tables deep: the store's JSON dump would fail.
    path = write(
        tmp_path, HEAD + "[task.options]\n" + ".".join(["a"] * 3000) + " = 1\n"
    )

    with pytest.raises(ConfigError, match="more than the 32"):
        load_config(path)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("[train]\nlearning_rate = inf", "train.learning_rate"),
        ("[round]\ndeadline_s = -inf", "round.deadline_s"),
        ("[strategy]\nserver_lr = nan", "strategy.server_lr"),
        ("[train]\noptions = { decay = [1.0, nan] }", r"train.options.decay\[1\]"),
    ],
)
def test_non_finite_numbers_are_refused_anywhere(
    tmp_path: Path, line: str, key: str
) -> None:
    path = write(tmp_path, HEAD + line + "\n")

    with pytest.raises(ConfigError, match=f"{key}: is (-?inf|nan); settings must"):
        load_config(path)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("[deployment]\ngrace_s = false", "deployment.grace_s"),
        ("[round]\ndeadline_s = true", "round.deadline_s"),
        ("[federation]\nrounds = true", "federation.rounds"),
        ("[federation]\nrounds = 3.0", "federation.rounds"),
        ("[evaluation]\ncentral = 1", "evaluation.central"),
    ],
)
def test_types_are_strict(tmp_path: Path, line: str, key: str) -> None:
    path = write(tmp_path, HEAD + line + "\n")

    with pytest.raises(ConfigError, match=f"invalid configuration: {key}: Input"):
        load_config(path)


def test_numbers_of_the_right_type_pass(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "[deployment]\ngrace_s = 0\nwait_s = 2.5\n")

    cfg = load_config(path)

    assert cfg.deployment.grace_s == 0.0 and cfg.deployment.wait_s == 2.5


@pytest.mark.parametrize(
    ("seconds", "ok"), [(365 * 86400, True), (365 * 86400 + 1, False)]
)
def test_durations_are_at_most_a_year(tmp_path: Path, seconds: int, ok: bool) -> None:
    path = write(tmp_path, HEAD + f"[round]\ndeadline_s = {seconds}\n")

    if ok:
        assert load_config(path).round.deadline_s == seconds
    else:
        with pytest.raises(ConfigError, match="round.deadline_s: Input should be less"):
            load_config(path)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fed.toml"
    os.mkfifo(fifo)

    with pytest.raises(ConfigError, match=r"is a FIFO \(named pipe\), not a regular"):
        load_config(fifo)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a character device"):
        load_config("/dev/zero")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize("extra", [0, 1])
def test_size_is_bounded(tmp_path: Path, extra: int) -> None:
    padding = MAX_CONFIG_BYTES - len(HEAD) - 2 + extra
    path = write(tmp_path, HEAD + "#" + "x" * padding + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES + extra

    if extra == 0:
        assert load_config(path).data.dataset == "synthetic"
    else:
        with pytest.raises(ConfigError, match=f"more than the {MAX_CONFIG_BYTES:,}"):
            load_config(path)


def test_many_problems_make_one_bounded_line(tmp_path: Path) -> None:
    keys = "".join(f"unknown_{i} = 1\n" for i in range(1000))
    long_key = "k" * 100_000
    path = write(tmp_path, HEAD + "[train]\n" + keys + f"{long_key} = 2\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    text = str(caught.value)
    assert "\n" not in text and len(text) < 1000
    assert text.startswith("invalid configuration: train.unknown_0: Extra inputs")
    assert text.endswith("and 991 more")


def test_a_long_key_is_cut_with_its_length(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f"[train]\n{'k' * 100_000} = 2\n")

    with pytest.raises(
        ConfigError, match=r"'train\.kkkk.*'\.\.\. \(100,006 characters\)"
    ):
        load_config(path)


def test_an_override_of_a_section_that_is_not_a_table_is_a_config_error(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "simulation = 5\n" + HEAD)

    with pytest.raises(ConfigError, match="simulation: Input should be"):
        load_config(path, simulation={"workers": 0})


def test_recursion_limit_is_left_as_it_was(tmp_path: Path) -> None:
    limit = sys.getrecursionlimit()
    path = write(tmp_path, HEAD + "options = " + "[" * 5000 + "]" * 5000 + "\n")

    with pytest.raises(ConfigError):
        load_config(path)

    assert sys.getrecursionlimit() == limit


@pytest.mark.parametrize(
    ("mib", "ok"), [(-1, False), (0, True), (1 << 20, True), ((1 << 20) + 1, False)]
)
def test_the_spool_memory_budget_is_from_0_to_a_tebibyte(
    tmp_path: Path, mib: int, ok: bool
) -> None:
    path = write(tmp_path, HEAD + f"[deployment]\nspool_memory_mib = {mib}\n")

    if ok:
        assert load_config(path).deployment.spool_memory_mib == mib
    else:
        with pytest.raises(ConfigError, match="deployment.spool_memory_mib"):
            load_config(path)
