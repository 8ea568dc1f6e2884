"""The command line as a user drives it: run configs from files, the printed full config, the examples."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import validate_run_config

from sid_platform.automation.run import local_instance, main_job_run_config
from sid_platform.automation.run_config import load_run_config_file, merge, validated
from sid_platform.cli import USAGE_ERROR, build_parser, main
from sid_platform.data.synthetic import generate
from sid_platform.definitions import defs
from sid_platform.profiles import PROFILE_NAMES, run_config
from sid_platform.service import server
from sid_platform.service.server import ServiceSettings
from sid_platform.serving import RANKERS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write_movielens_like(folder: Path) -> None:
    """The synthetic catalog and logs as a team would export them: its own column names, numeric ids,
    epoch-second timestamps, genres joined by ``|``."""
    data = generate(n_users=800, n_items=320, seed=0)
    item_number = {item: str(1000 + i) for i, item in enumerate(data.items["item_id"].to_list())}
    folder.mkdir(parents=True)
    data.interactions.select(
        pl.col("user_id").str.slice(1).cast(pl.Int64).alias("userId"),
        pl.col("item_id").replace_strict(item_number).alias("movieId"),
        pl.col("weight").alias("rating"),
        pl.col("timestamp").dt.epoch("s").alias("timestamp"),
    ).write_csv(folder / "interactions.csv")
    data.items.select(
        pl.col("item_id").replace_strict(item_number).alias("movieId"),
        pl.col("title"),
        pl.col("categories").list.join("|").alias("genres"),
    ).write_csv(folder / "items.csv")


def test_the_own_logs_example_runs_end_to_end_on_generated_csvs(tmp_path: Path, isolated_home: Path, capsys):
    logs = tmp_path / "logs"
    write_movielens_like(logs)
    code = main(
        [
            "run",
            "--config",
            str(EXAMPLES / "own_logs_csv.yaml"),
            "--profile",
            "test",  # the test profile's small models; the file's generic source replaces its synthetic one
            "--set",
            f"resources.dataset.config.data_dir={logs}",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "== test users: 800, items: 320" in out and "promoted to champion" in out
    # The graph read the CSVs through the example's column mapping: the team's ids, times and categories.
    interactions = pl.read_parquet(isolated_home / "assets" / "raw_interactions.parquet")
    assert interactions.height == 6796 and interactions["item_id"].str.starts_with("1").all()
    assert interactions["timestamp"].null_count() == 0
    catalog = pl.read_parquet(isolated_home / "assets" / "item_catalog.parquet")
    assert catalog["categories"][0].to_list()[0] == "Beauty"
    assert pl.read_parquet(isolated_home / "assets" / "quarantined_rows.parquet").height == 0


def test_a_wrong_key_is_named_and_nothing_runs(tmp_path: Path, isolated_home: Path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text(
        "ops:\n  codebooks:\n    config:\n      codebok_size: 64\n"
        "resources:\n  dataset:\n    config:\n      source: synthetic\n"
    )
    assert main(["run", "--config", str(config), "--profile", "test"]) == USAGE_ERROR
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "sid-platform run: ops.codebooks.config.codebok_size: unknown key; did you mean codebook_size? "
        "expected one of: batch_size, beta, codebook_size,"
    )
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err and captured.out == ""
    # A value of the wrong kind names its key and what it accepts.
    config.write_text("ops:\n  codebooks:\n    config:\n      tokenizer: pq\n      epochs: many\n")
    assert main(["run", "--config", str(config)]) == USAGE_ERROR
    lines = capsys.readouterr().err.splitlines()
    assert "sid-platform run: ops.codebooks.config.tokenizer: expected one of rqvae, rqkmeans, got 'pq'" in lines
    assert "sid-platform run: ops.codebooks.config.epochs: expected Int, got 'many'" in lines
    assert local_instance().get_runs() == [] and not (isolated_home / "assets").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no such file"),
        ("ops: [codebooks\n", "not valid YAML at line 2"),
        ("- ops\n", "expected a mapping"),
    ],
)
def test_a_missing_or_broken_file_is_one_line(tmp_path: Path, capsys, text: str | None, message: str):
    path = tmp_path / "config.yaml"
    if text is not None:
        path.write_text(text)
    assert main(["run", "--config", str(path)]) == USAGE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err


def test_a_selection_keeps_the_config_of_its_checks(tmp_path: Path, capsys):
    # 3 of 10 events point at an item the catalog lacks: 30 %, but 3 rows, within the default 10 rows.
    events = ["user_id,item_id,position"] + [f"u{i % 2},{'ghost' if i < 3 else 'a'},{i}" for i in range(10)]
    (tmp_path / "events.csv").write_text("\n".join(events) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,Alpha\nb,Beta\n")
    dataset = {"source": "generic", "data_dir": str(tmp_path), "interactions_path": "events.csv"}
    dataset["items_path"] = "items.csv"
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(yaml.safe_dump({"resources": {"dataset": {"config": dataset}}}))
    assert main(["run", "--config", str(lenient), "--select", "raw_interactions"]) == 0
    out = capsys.readouterr().out
    assert "materialized: item_catalog, quarantined_rows, raw_interactions" in out  # ingest builds all three
    assert "failed" not in out
    # The check's op is raw_interactions_raw_interactions_expectations; its limits survive the selection.
    strict = tmp_path / "strict.yaml"
    check = {"raw_interactions_raw_interactions_expectations": {"config": {"max_quarantined_rows": 2}}}
    strict.write_text(yaml.safe_dump({"ops": check, "resources": {"dataset": {"config": dataset}}}))
    assert main(["run", "--config", str(strict), "--select", "raw_interactions"]) == 1
    out = capsys.readouterr().out
    assert (
        "check raw_interactions_expectations on raw_interactions failed: 3 of 10 interactions rows (30.0%) were "
        "quarantined, more than 2 rows and more than 5%" in out
    )


def test_a_source_with_no_usable_row_fails_the_step_and_keeps_its_quarantine(
    tmp_path: Path, isolated_home: Path, capsys
):
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\nu1,a,soon\nu2,b,later\n")
    dataset = {"source": "generic", "data_dir": str(tmp_path), "interactions_path": "events.csv"}
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({"resources": {"dataset": {"config": dataset}}}))
    assert main(["run", "--config", str(config), "--select", "raw_interactions"]) == 1
    out = capsys.readouterr().out
    assert f"step ingest failed: {tmp_path / 'events.csv'}: all 2 interactions rows were quarantined" in out
    assert "Traceback" not in out
    stored = pl.read_parquet(isolated_home / "assets" / "quarantined_rows.parquet")
    assert stored.select("row", "field").rows() == [(2, "timestamp"), (3, "timestamp")]
    assert not (isolated_home / "assets" / "raw_interactions.parquet").exists()


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_config_prints_every_knob_and_runs_as_printed(name: str, capsys):
    assert main(["config", "--profile", name]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    codebooks = printed["ops"]["codebooks"]["config"]
    assert codebooks["hidden_dims"] == [512, 256, 128]  # list defaults too, which Dagster's schema omits
    assert codebooks["codebook_size"] == (16 if name == "test" else None)  # None: follows the catalog
    limits = printed["ops"]["raw_interactions_raw_interactions_expectations"]["config"]
    assert limits == {"max_quarantined_rows": 10, "max_quarantined_fraction": 0.05}
    assert printed["resources"]["dataset"]["config"]["interaction_columns"] == {}
    for job in ("main_job", "retrain_job"):
        validate_run_config(defs.resolve_job_def(job), printed)
    config, _ = main_job_run_config("default", printed)  # as a file over the default profile: the same run
    assert config["ops"]["codebooks"] == printed["ops"]["codebooks"]


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_is_a_valid_run_config_with_a_header(example: Path):
    text = example.read_text()
    assert text.startswith("# ") and "Expects" in text and "Run:" in text
    # Against the schema only: the data files the examples expect are not in a checkout.
    validated(defs.resolve_job_def("main_job"), merge(run_config("default"), load_run_config_file(example)))


def test_missing_data_files_are_named_before_the_run_and_a_failed_step_says_why(tmp_path: Path, capsys):
    config = tmp_path / "mine.yaml"
    dataset = {"source": "generic", "data_dir": str(tmp_path), "interactions_path": "events.csv"}
    config.write_text(yaml.safe_dump({"resources": {"dataset": {"config": dataset}}}))
    assert main(["run", "--config", str(config)]) == USAGE_ERROR
    err = capsys.readouterr().err
    assert err == (
        f"sid-platform run: resources.dataset.config.interactions_path: {tmp_path / 'events.csv'} does not exist "
        f"(relative paths start at the data directory, {tmp_path})\n"
    )
    assert local_instance().get_runs() == []
    # The file is there but its columns are not the mapped ones: the step fails, the command says why.
    (tmp_path / "events.csv").write_text("user,item\nu1,a\n")
    assert main(["run", "--config", str(config), "--select", "raw_interactions"]) == 1
    out = capsys.readouterr().out
    assert "step ingest failed: " in out and "required column(s) ['user_id', 'item_id'] not found" in out


def test_serve_takes_a_ranking_override_and_passes_it_to_the_service(monkeypatch: pytest.MonkeyPatch, capsys):
    served: list[ServiceSettings] = []
    monkeypatch.setattr(server, "serve", served.append)
    assert main(["serve", "--ranking", "router_fused", "--precompute-users", "0"]) == 0
    assert main(["serve"]) == 0
    assert [settings.ranking for settings in served] == ["router_fused", None]  # None: the evaluation's choice
    assert served[0].precompute_users == 0
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["serve", "--ranking", "router_fancy"])
    assert refused.value.code == USAGE_ERROR and "invalid choice: 'router_fancy'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    serve_help = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert "{" + ",".join(RANKERS) + "}" in serve_help and "(default: the one its evaluation chose)" in serve_help
