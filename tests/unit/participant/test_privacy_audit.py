"""What a site's own records say of a run, for its privacy audit of a model."""

import pytest

from accord.errors import ConfigError, DatasetError
from accord.participant.data import load_local_data
from accord.participant.privacy_audit import audited_rows, run_history
from accord.privacy.dpsgd import OPTION_KEY


def _trained(run, round, **options):
    return {
        "event": "trained",
        "run_id": run,
        "round": round,
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 0.1,
        "options": options,
    }


def test_only_the_runs_own_entries_count_whatever_its_wire_suffix():
    entries = [
        {"event": "data", "sha256": "old"},
        {"event": "data", "sha256": "abc"},
        {"event": "encoded_data", "run_id": "R1.aaaa", "encoding": {"k": 1}},
        _trained("R1.aaaa", 1, momentum=0.9, **{OPTION_KEY: "{}"}),
        _trained("R10.bbbb", 2),  # another run whose id starts alike
        _trained("R1.cccc", 2, momentum=0.9),  # R1 resumed by another process
        {"event": "data", "sha256": "later"},
    ]

    history = run_history(entries, "R1")

    assert history.rounds == {1, 2}
    assert history.settings is not None
    assert history.settings.options == {"momentum": 0.9}  # the DP plan left out
    assert (history.settings.epochs, history.settings.batch_size) == (2, 16)
    assert history.encoding is not None and history.data_sha256 == "abc"
    assert run_history(entries, "R2").rounds == frozenset()


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "site.csv"
    rows = [f"{i % 5},{'yes' if i % 3 else 'no'}" for i in range(30)]
    path.write_text("x,y\n" + "\n".join(rows) + "\n")
    return load_local_data(f"csv:{path}", options={"target": "y"})


def test_csv_rows_without_the_runs_encoding_name_the_site_log(table):
    empty = run_history([], "R1")

    with pytest.raises(ConfigError) as err:
        audited_rows(table, empty, data_sha256="abc")

    assert err.value.key == "--site-log"


def test_a_csv_that_changed_since_the_run_is_refused(table):
    history = run_history(
        [
            {"event": "data", "sha256": "then"},
            {"event": "encoded_data", "run_id": "R1.x", "encoding": {"k": 1}},
        ],
        "R1",
    )

    with pytest.raises(DatasetError, match="changed since the run"):
        audited_rows(table, history, data_sha256="now")


@pytest.mark.parametrize(
    "broken",
    [
        {"epochs": "two"},
        {"batch_size": 0},
        {"round": 0},
        {"learning_rate": None},
    ],
)
def test_a_malformed_trained_entry_names_the_site_log(broken):
    entry = {**_trained("R1.a", 1), **broken}

    with pytest.raises(ConfigError) as err:
        run_history([entry], "R1")

    assert err.value.key == "--site-log"
