"""Metadata every asset attaches the same way: a trainer's report, and the evaluation's tables, figures and page.

``training_report`` is the one block each trainer (``sasrec_model``, ``codebooks``, ``router_checkpoint``,
``dpo_checkpoint``) used to write out: its per-epoch plot, its per-epoch table, and its MLflow run with
parameters, figures, curves and plots. It returns the metadata entries, so an asset adds only its own.
``run_report`` and ``publish_report`` make the run's one-page HTML report and store, log and link it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from dagster import AssetExecutionContext, AssetKey, MetadataValue

from sid_platform.baselines.sasrec import SASRecCheckpoint
from sid_platform.evaluation.plots import twin_line_plot
from sid_platform.evaluation.report import markdown_table, metrics_table
from sid_platform.evaluation.run_report import RunReport, render_html, training_panels
from sid_platform.reranking.dpo import RerankerCheckpoint
from sid_platform.reranking.study import SERVED
from sid_platform.resources import MlflowResource, SideFileStorage
from sid_platform.retrieval.blend import ScoreBlend
from sid_platform.retrieval.router import RouterCheckpoint
from sid_platform.semantic_ids import CodebooksCheckpoint
from sid_platform.semantic_ids.usid import code_columns, table_levels
from sid_platform.serving import SERVING_REASON
from sid_platform.serving.evaluation import channels_table, summary_line

PROFILE_TAG = "sid/profile"  # the run tag naming the profile a run was launched with (demo, retrain triggers)


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


def blend_table(blend: ScoreBlend) -> MetadataValue:
    """Validation Recall@10 / NDCG@10 of every SASRec weight tried, the chosen one marked."""
    rows = [
        (f"**{w:.1f}**" if w == blend.sasrec_weight else f"{w:.1f}", r, n)
        for w, r, n in zip(blend.weights, blend.valid_recall_at_10, blend.valid_ndcg_at_10, strict=True)
    ]
    caption = f"Validation users: {blend.valid_users}; 0 = the router's fused ranking, 1 = SASRec's order."
    return MetadataValue.md(f"{caption}\n\n{markdown_table(['SASRec weight', 'R@10', 'N@10'], rows)}")


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


def run_facts(context: AssetExecutionContext, document: dict, json_path: str) -> dict[str, str]:
    """What the report says about the run: ids, profile, data, date, the protocol's history setting."""
    test, valid = document["test"], document["valid"]
    masked = test["protocol"]["exclude_history"]
    return {
        "run id": context.run_id,
        "job": context.job_name or "",
        "profile": context.run.tags.get(PROFILE_TAG, "not recorded (launched without a profile, e.g. from the UI)"),
        "dataset": dataset_source(context),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "history masking": "history excluded from ranking (exclude_history=true)"
        if masked
        else "history not masked (exclude_history=false)",
        "users (test / validation)": f"{test['users']} / {valid['users']}",
        "items": str(test["n_items"]),
        "codebooks": document["semantic_ids"]["tokenizer_version"],
        "evaluation JSON": json_path,
    }


def dataset_source(context: AssetExecutionContext) -> str:
    """The source the catalog was loaded from (``p5:beauty``, ``synthetic``), as ``ingest`` recorded it."""
    event = context.instance.get_latest_materialization_event(AssetKey("item_catalog"))
    materialization = event.asset_materialization if event is not None else None
    source = materialization.metadata.get("source") if materialization is not None else None
    return str(source.value) if source is not None else "unknown"


def run_report(
    context: AssetExecutionContext,
    document: dict,
    json_path: str,
    *,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
    sasrec: SASRecCheckpoint,
    router: RouterCheckpoint,
    reranker: RerankerCheckpoint,
) -> bytes:
    """The run's one-page HTML report: the evaluation document with the stored checkpoints' training logs."""
    codes = usid_table.select(code_columns(table_levels(usid_table))).to_numpy()
    report = RunReport(
        document=document,
        facts=run_facts(context, document, json_path),
        serving_reason=SERVING_REASON,
        codes=codes,
        codebook_size=codebooks.codebook_size,
        panels=training_panels(sasrec.log, router.log, reranker.log, reranker.curves, codebooks.log),
        study=reranker.study,
        study_users=reranker.users,
        served_variant=SERVED.label,
    )
    return render_html(report).encode()


def publish_report(
    context: AssetExecutionContext, storage: SideFileStorage, mlflow: MlflowResource, document: dict, report: bytes
) -> dict[str, Any]:
    """Store the report beside the evaluation JSON, log it to MLflow, and return the metadata linking both."""
    path = storage.store().write(f"runs/{context.run_id}/report.html", report)
    serving = document["serving"]
    metrics = {f"serving_{key}": serving[key] for key in ("recall@10", "ndcg@10", "min_codebook_utilization")}
    metrics |= {f"test_{name}_{key}": m[key] for name, m in document["test"]["metrics"].items() for key in m}
    run_id = mlflow.log_report(context, report, metrics=metrics)
    context.log.info(f"run report: {path} (MLflow run {run_id}, artifact report/report.html)")
    return {"report": MetadataValue.path(path), "report_mlflow_run_id": run_id}
