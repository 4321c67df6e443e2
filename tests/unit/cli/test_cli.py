import csv
import io
import json
import os

from typer.testing import CliRunner

from accord.cli.main import app

runner = CliRunner()

FED = """
[federation]
name = "cli-test"
rounds = 2
seed = 3
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[store]
directory = "{dir}"
"""


def _simulate(tmp_path, *extra):
    config = tmp_path / "fed.toml"
    config.write_text(FED.format(dir=tmp_path / "runs"))
    return runner.invoke(app, ["simulate", str(config), "--json", *extra])


def test_simulate_json_then_list_show_and_export(tmp_path):
    result = _simulate(tmp_path)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run_id = out["run_id"]
    assert [r["status"] for r in out["rounds"]] == ["completed", "completed"]

    listed = runner.invoke(app, ["runs", "--dir", str(tmp_path / "runs"), "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]

    shown = runner.invoke(
        app, ["runs", "show", run_id, "--dir", str(tmp_path / "runs")]
    )
    assert shown.exit_code == 0, shown.output
    assert "3/3" in shown.stdout

    exported = runner.invoke(
        app,
        ["runs", "export", run_id, "--format", "csv", "--dir", str(tmp_path / "runs")],
    )
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {r["scope"] for r in rows} >= {"central", "federated", "site"}
    assert {int(r["round"]) for r in rows} == {1, 2}


def test_invalid_config_exits_2_naming_the_key(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text('[data]\ndataset = "wine"\nsites = 0\n[task]\nfactory = "a:b"\n')
    result = runner.invoke(app, ["simulate", str(config)])
    assert result.exit_code == 2
    assert "data.sites" in result.output


def test_an_unknown_run_is_a_usage_error_exit_2(tmp_path):
    # A typo in a run id is the user's to fix, not a broken store (exit 4).
    result = runner.invoke(app, ["runs", "show", "nope", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no run 'nope'" in result.output


def test_runs_show_and_export_take_latest_or_a_prefix(tmp_path):
    first = json.loads(_simulate(tmp_path).stdout)["run_id"]
    second = json.loads(_simulate(tmp_path).stdout)["run_id"]
    runs = ["--dir", str(tmp_path / "runs")]

    unique = next(first[:i] for i in range(1, 99) if not second.startswith(first[:i]))

    latest = runner.invoke(app, ["runs", "show", "latest", *runs])
    by_prefix = runner.invoke(app, ["runs", "show", unique, *runs])
    exported = runner.invoke(app, ["runs", "export", "latest", "-f", "json", *runs])

    assert latest.exit_code == 0, latest.output
    assert latest.stdout.startswith(second)
    assert by_prefix.exit_code == 0, by_prefix.output
    assert by_prefix.stdout.startswith(first)
    assert json.loads(exported.stdout)["run"]["run_id"] == second


def test_a_prefix_of_several_runs_is_refused_listing_them(tmp_path):
    ids = [json.loads(_simulate(tmp_path).stdout)["run_id"] for _ in range(2)]
    common = os.path.commonprefix(ids)  # ids start with the date: never empty

    result = runner.invoke(
        app, ["runs", "show", common, "--dir", str(tmp_path / "runs")]
    )

    assert common
    assert result.exit_code == 2
    assert "is the start of 2 run ids" in " ".join(result.output.split())


def test_runs_lists_whole_ids_in_a_narrow_terminal(tmp_path):
    run_id = json.loads(_simulate(tmp_path).stdout)["run_id"]

    listed = runner.invoke(
        app, ["runs", "--dir", str(tmp_path / "runs")], env={"COLUMNS": "60"}
    )

    assert listed.exit_code == 0, listed.output
    assert run_id in listed.stdout


def test_simulate_resume_of_a_run_another_process_serves_exits_4(
    tmp_path, lease_holder
):
    from accord.config import load_config
    from accord.coordinator.runner import create_run
    from accord.store import SqlStore

    config = tmp_path / "fed.toml"
    config.write_text(FED.format(dir=tmp_path / "runs"))
    url = f"sqlite:///{tmp_path}/runs.db"
    with SqlStore(url) as store:
        run_id = create_run(store, load_config(config))
    holder = lease_holder(url, run_id)

    result = runner.invoke(
        app, ["simulate", str(config), "--store", url, "--resume", run_id]
    )

    output = " ".join(result.output.split())
    assert result.exit_code == 4, result.output
    assert f"run {run_id} is already being served by process {holder.pid} on" in output
    with SqlStore(url) as store:
        assert store.get_run(run_id).status == "running"
        assert store.rounds(run_id) == []


def test_datasets_lists_the_bundled_tables():
    result = runner.invoke(app, ["datasets", "--json"])
    assert result.exit_code == 0, result.output
    names = {d["name"] for d in json.loads(result.stdout)}
    assert {
        "covid_testing",
        "lending_club",
        "mlc_churn",
        "digits",
        "breast_cancer",
        "wine",
    } <= names


def test_runs_show_lists_refused_messages_verbatim(tmp_path):
    from accord.store import SqlStore

    run_id = json.loads(_simulate(tmp_path).stdout)["run_id"]
    with SqlStore(f"sqlite:///{tmp_path}/runs/accord.db") as store:
        store.record_event(
            run_id,
            round=2,
            participant="site-01",
            kind="mismatch",
            detail="SubmitUpdate: tensor '[/bold]w' is <f4[4, 4]",
        )

    shown = runner.invoke(
        app, ["runs", "show", run_id, "--dir", str(tmp_path / "runs")]
    )

    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "refused messages" in text
    assert "site-01" in text and "mismatch" in text
    assert "[/bold]w" in text  # a peer's text is shown, never taken for markup


def test_an_error_message_keeps_its_square_brackets():
    import typer

    from accord.cli.errors import reported
    from accord.errors import ConfigError

    def fail() -> None:
        with reported():
            raise ConfigError("list it in [deployment] participants")

    command = typer.Typer()
    command.command()(fail)
    result = CliRunner().invoke(command, [])

    assert result.exit_code == 2
    assert "[deployment] participants" in result.output


def test_runs_show_and_the_csv_carry_the_baselines(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(
        FED.format(dir=tmp_path / "runs") + "[evaluation]\nbaselines = true\n"
    )
    out = json.loads(runner.invoke(app, ["simulate", str(config), "--json"]).stdout)
    sites = sorted(out["comparison"]["sites"])
    runs = ["--dir", str(tmp_path / "runs")]

    shown = runner.invoke(app, ["runs", "show", "latest", *runs])
    exported = runner.invoke(app, ["runs", "export", "latest", *runs])

    assert shown.exit_code == 0, shown.output
    assert "Federated vs pooled vs each site alone" in shown.stdout
    assert all(f"{site} alone" in shown.stdout for site in sites)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    pooled = {r["name"]: float(r["value"]) for r in rows if r["scope"] == "pooled"}
    assert pooled["accuracy"] == out["comparison"]["pooled"]["accuracy"]
    assert {r["participant"] for r in rows if r["scope"] == "alone"} == set(sites)
    assert {r["round"] for r in rows if r["scope"] in ("pooled", "alone")} == {"2"}


CSV_FED = """
[federation]
rounds = 1
[data]
dataset = "csv:table.csv"
partition = "natural"
sites = 2
options = {{ target = "y", site_column = "site"{extra} }}
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[store]
directory = "{dir}"
"""


def _csv_federation(tmp_path, rows: str, extra: str = ""):
    lines = [f"{x},{'a' if i % 2 else 'b'},{'u' if i % 3 else 'v'}" for i, x in rows]
    (tmp_path / "table.csv").write_text("x,site,y\n" + "\n".join(lines) + "\n")
    config = tmp_path / "fed.toml"
    config.write_text(CSV_FED.format(dir=tmp_path / "runs", extra=extra))
    return config


def test_datasets_check_profiles_the_table_and_names_each_problem(tmp_path):
    values = [(i, str(i * 0.5)) for i in range(40)]
    values[7] = (7, "inf")
    values[9] = (9, ".")
    config = _csv_federation(tmp_path, [(i, x) for i, x in values])

    checked = runner.invoke(app, ["datasets", "check", str(config), "--json"])
    simulated = runner.invoke(app, ["simulate", str(config)])

    assert checked.exit_code == 2, checked.output
    report = json.loads(checked.stdout)
    x = next(c for c in report["columns"] if c["name"] == "x")
    assert (x["kind"], x["non_finite"], x["missing"]) == ("mixed", 1, 0)
    assert len(report["problems"]) == 2
    assert simulated.exit_code == 2  # the run refuses what the check found
    text = " ".join(simulated.output.split())
    assert "such as 'inf' (line 9)" in text and "such as '.' (line 11)" in text


def test_datasets_check_passes_a_clean_table(tmp_path):
    config = _csv_federation(
        tmp_path, [(i, str(i * 0.5)) for i in range(40)], extra=', missing = ["."]'
    )

    checked = runner.invoke(app, ["datasets", "check", str(config)])

    assert checked.exit_code == 0, checked.output
    assert "no problems" in checked.stdout


def test_runs_show_keeps_privacy_bookkeeping_out_of_the_refused_messages(tmp_path):
    from accord.coordinator.privacy import RELEASED_EVENT
    from accord.coordinator.record_privacy import DISPATCHED_EVENT
    from accord.store import SqlStore

    run_id = json.loads(_simulate(tmp_path).stdout)["run_id"]
    with SqlStore(f"sqlite:///{tmp_path}/runs/accord.db") as store:
        for kind in (RELEASED_EVENT, DISPATCHED_EVENT):
            store.record_event(
                run_id, round=2, participant=None, kind=kind, detail='{"sites": []}'
            )

    shown = runner.invoke(
        app, ["runs", "show", run_id, "--dir", str(tmp_path / "runs")]
    )
    as_json = runner.invoke(
        app, ["runs", "show", run_id, "--dir", str(tmp_path / "runs"), "--json"]
    )

    assert shown.exit_code == 0, shown.output
    assert "refused messages" not in shown.stdout
    assert DISPATCHED_EVENT not in shown.stdout
    kinds = {e["kind"] for e in json.loads(as_json.stdout)["events"]}
    assert {RELEASED_EVENT, DISPATCHED_EVENT} <= kinds  # kept in the record
