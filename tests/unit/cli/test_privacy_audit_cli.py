"""``accord audit privacy``: membership inference against a simulated run."""

import json

from typer.testing import CliRunner

from accord.cli.main import app

runner = CliRunner()

FED = """
[federation]
name = "mia-cli"
rounds = 2
seed = 5
[data]
dataset = "wine"
sites = 2
holdout_fraction = 0.4
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
federated = false
[simulation]
workers = 0
[store]
directory = "{dir}"
"""

RECORD = """
[privacy]
level = "record"
noise_multiplier = 1.2
clip = 1.0
noise_seed = 4
"""


def _run(tmp_path, extra=""):
    config = tmp_path / "fed.toml"
    config.write_text(FED.format(dir=tmp_path / "runs") + extra)
    result = runner.invoke(app, ["simulate", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["run_id"], config


def _audit(tmp_path, *args):
    return runner.invoke(
        app, ["audit", "privacy", *args, "--dir", str(tmp_path / "runs")]
    )


def test_audit_of_a_run_without_dp_reports_each_site_and_all(tmp_path):
    run_id, _ = _run(tmp_path)

    result = _audit(tmp_path, run_id[:10], "--json", "--shadows", "2")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["run_id"] == run_id and doc["round"] == 2 and doc["level"] == "off"
    assert [s["site"] for s in doc["sites"]] == ["site-00", "site-01"]
    for part in [*doc["sites"], doc["overall"]]:
        assert part["members"] == part["nonmembers"] > 0
        for attack in ("loss", "lira"):
            assert 0.0 <= part["attacks"][attack]["auc"] <= 1.0
            assert set(part["attacks"][attack]["tpr"]) == {"fpr_0.001", "fpr_0.01"}
        assert part["bound"]["auc"] == 1.0  # no DP: no bound
    assert doc["sites"][0]["epsilon"] is None and doc["shadows"] == 2


def test_record_level_run_sets_each_site_beside_its_own_bound(tmp_path):
    run_id, _ = _run(tmp_path, RECORD)

    result = _audit(tmp_path, "latest", "--json", "--site", "site-01", "--shadows", "0")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["level"] == "record"
    (site,) = doc["sites"]
    assert site["site"] == "site-01" and list(site["attacks"]) == ["loss"]
    assert 0 < site["epsilon"] < 50 and site["delta"] == 1e-5
    assert 0.5 < site["bound"]["auc"] < 1.0
    assert site["bound"]["tpr"]["fpr_0.001"] < 1.0


def test_table_names_every_site_and_the_bound(tmp_path):
    _run(tmp_path, RECORD)

    result = _audit(tmp_path, "latest", "--shadows", "2")

    assert result.exit_code == 0, result.output
    for word in ("site-00", "site-01", "all", "loss", "lira", "TPR@0.1%"):
        assert word in result.stdout


def test_an_unknown_site_or_run_exits_2_naming_it(tmp_path):
    _run(tmp_path)

    unknown_site = _audit(tmp_path, "latest", "--site", "site-99")
    unknown_run = _audit(tmp_path, "19990101-000000-000000")

    assert unknown_site.exit_code == 2
    assert "site-99" in unknown_site.output and "site-00" in unknown_site.output
    assert unknown_run.exit_code == 2


def test_a_missing_checkpoint_exits_4_and_says_where_it_looked(tmp_path):
    run_id, _ = _run(tmp_path)
    for path in (tmp_path / "runs" / "checkpoints" / run_id).iterdir():
        path.unlink()

    result = _audit(tmp_path, run_id)

    assert result.exit_code == 4
    assert "checkpoint of round 2" in result.output


def test_a_config_other_than_the_runs_is_refused(tmp_path):
    run_id, config = _run(tmp_path)
    config.write_text(config.read_text().replace("seed = 5", "seed = 6"))

    result = _audit(tmp_path, run_id, "--config", str(config))

    assert result.exit_code == 2
    assert "seed" in result.output


PARTICIPANT = """
[privacy]
level = "participant"
noise_multiplier = 2.0
clip = 0.5
noise_seed = 4
"""


def test_participant_level_gives_every_site_the_federations_epsilon(tmp_path):
    _run(tmp_path, PARTICIPANT)

    result = _audit(tmp_path, "latest", "--json", "--shadows", "0")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["level"] == "participant"
    epsilons = {s["epsilon"] for s in doc["sites"]}
    assert len(epsilons) == 1 and 0 < epsilons.pop() == doc["epsilon"]
    assert doc["overall"]["bound"]["auc"] < 1.0


def test_one_shadow_is_refused_before_anything_runs(tmp_path):
    _run(tmp_path)

    result = _audit(tmp_path, "latest", "--shadows", "1")

    assert result.exit_code == 2
    assert "at least 2 shadows" in result.output


CSV_FED = """
[federation]
name = "mia-csv"
rounds = 1
[data]
dataset = "csv:table.csv"
partition = "natural"
sites = 2
options = {{ target = "label", site_column = "site" }}
holdout_fraction = 0.4
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
federated = false
[simulation]
workers = 0
[store]
directory = "{dir}"
"""


def _table(n=60):
    rows = ["a,b,site,label"]
    rows += [
        f"{i % 7},{i % 5},{'north' if i % 2 else 'south'},{i % 3 == 0}"
        for i in range(n)
    ]
    return "\n".join(rows) + "\n"


def test_a_csv_run_is_audited_through_its_config_and_refused_once_it_changed(
    tmp_path,
):
    (tmp_path / "table.csv").write_text(_table())
    config = tmp_path / "fed.toml"
    config.write_text(CSV_FED.format(dir=tmp_path / "runs"))
    ran = runner.invoke(app, ["simulate", str(config), "--json"])
    assert ran.exit_code == 0, ran.output
    args = ["latest", "--config", str(config), "--shadows", "0"]

    before = _audit(tmp_path, *args)
    (tmp_path / "table.csv").write_text(_table(61))
    after = _audit(tmp_path, *args)

    assert before.exit_code == 0, before.output
    assert after.exit_code == 2
    assert "changed since it ran" in after.output
