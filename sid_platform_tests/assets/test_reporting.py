"""``training_report``: what every trainer logs to MLflow and attaches as metadata, from one description."""

from typing import Any

from sid_platform.assets.reporting import Column, EpochPlot, EpochReport, training_report

EPOCHS = [
    {"epoch": 0, "loss": 2.34567, "acc": 0.1, "seconds": 1.6},
    {"epoch": 1, "loss": 1.5, "acc": 0.2, "seconds": 3.2},
]


class RecordingMlflow:
    """Stands in for ``MlflowResource``: records the run it was asked to log."""

    def __init__(self) -> None:
        self.logged: dict[str, Any] = {}

    def log_training_run(self, context: object, **kwargs: Any) -> str:
        self.logged = kwargs
        return "run-1"


def test_the_report_logs_figures_curves_and_plots_and_returns_the_metadata():
    mlflow = RecordingMlflow()
    report = EpochReport(
        curves=("loss", "acc"),
        plot=EpochPlot("loss", "acc", "train loss", "accuracy", name="accuracy", key="accuracy_plot"),
        table=(Column("epoch", "epoch"), Column("loss", "loss", 3), Column("seconds", "seconds", 0)),
    )
    metadata = training_report(
        None,  # type: ignore[arg-type]
        mlflow,  # type: ignore[arg-type]
        EPOCHS,
        report,
        params={"lr": 0.1},
        figures={"best_epoch": 1},
        plots={"usage": "![usage](data:image/png;base64,AAAA)"},
        metrics={"extra": 0.5},
    )
    assert mlflow.logged["params"] == {"lr": 0.1}
    assert mlflow.logged["metrics"] == {"best_epoch": 1, "extra": 0.5}  # extras go to MLflow only
    assert mlflow.logged["curves"] == {"loss": [2.34567, 1.5], "acc": [0.1, 0.2]}
    assert set(mlflow.logged["plots"]) == {"usage", "accuracy"}
    assert set(metadata) == {"best_epoch", "usage", "accuracy_plot", "training_curve", "mlflow_run_id"}
    assert metadata["mlflow_run_id"] == "run-1" and "extra" not in metadata
    table = metadata["training_curve"].value
    assert "| 0 | 2.3460 | 2 |" in table and "| 1 | 1.5000 | 3 |" in table  # rounded to 3 digits, seconds to an int


def test_a_report_without_plot_or_table_logs_only_what_it_is_given():
    mlflow = RecordingMlflow()
    metadata = training_report(None, mlflow, [], EpochReport(curves=()), params={}, figures={"x": 1.0})  # type: ignore[arg-type]
    assert metadata == {"x": 1.0, "mlflow_run_id": "run-1"} and mlflow.logged["curves"] == {}
    assert Column("a", "a").cell({"a": 1.26}) == 1.26 and Column("a", "a", 1).cell({"a": 1.26}) == 1.3
