"""Metadata every asset attaches the same way: a trainer's report, and the evaluation's tables and figures.

``training_report`` is the one block each trainer (``sasrec_model``, ``codebooks``, ``router_checkpoint``,
``dpo_checkpoint``) used to write out: its per-epoch plot, its per-epoch table, and its MLflow run with
parameters, figures, curves and plots. It returns the metadata entries, so an asset adds only its own.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetExecutionContext, MetadataValue

from sid_platform.evaluation.plots import twin_line_plot
from sid_platform.evaluation.report import markdown_table, metrics_table
from sid_platform.resources import MlflowResource
from sid_platform.serving.evaluation import channels_table, summary_line


@dataclass(frozen=True)
class EpochPlot:
    """Two per-epoch series on twin axes; ``name`` is the MLflow image, ``key`` the metadata entry."""

    left: str
    right: str
    left_label: str
    right_label: str
    name: str = "training_plot"
    key: str = "training_plot"

    def draw(self, epochs: Sequence[Mapping[str, Any]]) -> str:
        x = [e["epoch"] for e in epochs]
        left, right = [e[self.left] for e in epochs], [e[self.right] for e in epochs]
        return twin_line_plot(x, left, right, "epoch", self.left_label, self.right_label)


@dataclass(frozen=True)
class Column:
    """A column of the per-epoch table: header, the epoch record's key, rounding (None: as is, 0: integer)."""

    header: str
    key: str
    digits: int | None = None

    def cell(self, epoch: Mapping[str, Any]) -> Any:
        value = epoch[self.key]
        if self.digits is None:
            return value
        return round(value) if self.digits == 0 else round(value, self.digits)


@dataclass(frozen=True)
class EpochReport:
    """What a trainer reports of its epochs: the series logged as MLflow curves, a plot, a table."""

    curves: tuple[str, ...]
    plot: EpochPlot | None = None
    table: tuple[Column, ...] = ()


def training_report(
    context: AssetExecutionContext,
    mlflow: MlflowResource,
    epochs: Sequence[Mapping[str, Any]],
    report: EpochReport,
    *,
    params: Mapping[str, Any],
    figures: Mapping[str, Any],
    plots: Mapping[str, str] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Log the trainer's MLflow run and return its metadata: figures, plots, the per-epoch table, the run id.

    ``figures`` go to both MLflow and the metadata, ``metrics`` to MLflow only; ``plots`` are images drawn
    already (markdown), logged and attached under their names.
    """
    images = dict(plots or {})
    keys = {name: name for name in images}
    if report.plot is not None:
        images[report.plot.name], keys[report.plot.name] = report.plot.draw(epochs), report.plot.key
    run_id = mlflow.log_training_run(
        context,
        params=dict(params),
        metrics={**figures, **(metrics or {})},
        curves={key: [e[key] for e in epochs] for key in report.curves},
        plots=images,
    )
    metadata = {**figures, **{keys[name]: MetadataValue.md(image) for name, image in images.items()}}
    if report.table:
        rows = [tuple(column.cell(e) for column in report.table) for e in epochs]
        metadata["training_curve"] = MetadataValue.md(markdown_table([c.header for c in report.table], rows))
    return {**metadata, "mlflow_run_id": run_id}


def evaluation_metadata(document: dict, json_path: str) -> dict[str, Any]:
    """The evaluation's tables, the serving figures the gate and the sensors read, and each model's R/N@10."""
    test = document["test"]
    utilization = document["semantic_ids"]["utilization_per_level"]
    serving = document["serving"]
    return {
        "test_table": MetadataValue.md(f"{summary_line(document)}\n\n{metrics_table(test['metrics'])}"),
        "valid_table": MetadataValue.md(metrics_table(document["valid"]["metrics"])),
        "channels_table": MetadataValue.md(channels_table(test)),
        **{f"test_{key}": round(value, 4) for key, value in test["channels"].items()},
        "beam_search_ms_per_user": round(test["retrieval_ms_per_user"]["beam_search"], 3),
        "exclude_history": test["protocol"]["exclude_history"],
        "serving_model": serving["model"],
        "serving_recall@10": serving["recall@10"],
        "serving_ndcg@10": serving["ndcg@10"],
        "min_codebook_utilization": round(min(utilization), 4),
        "json": MetadataValue.path(json_path),
        **{f"{name}_recall@10": m["recall@10"] for name, m in test["metrics"].items()},
        **{f"{name}_ndcg@10": m["ndcg@10"] for name, m in test["metrics"].items()},
        **{f"codebook_utilization_level_{i + 1}": round(u, 4) for i, u in enumerate(utilization)},
    }
