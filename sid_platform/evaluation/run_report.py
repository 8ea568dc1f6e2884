"""One page per run: what was measured, what is served and why, and how each model trained.

The figures of a run are otherwise spread over Dagster metadata, MLflow runs and a JSON file. This page
puts them together, rendered from plain inputs (the evaluation document, the training logs, the Semantic
IDs and the reranker's study) as one HTML file whose images are inline base64 PNGs: it opens offline,
from S3 or as a single MLflow artifact, with nothing to fetch.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sid_platform.evaluation.plots import Line, channels_png, code_usage_png, curves_png
from sid_platform.evaluation.report import METRIC_COLUMNS
from sid_platform.progress import duration
from sid_platform.training import TrainingLog

SPLIT_TITLES = {"test": "Test users", "valid": "Validation users"}
_STOPS = {"epochs": "every epoch ran", "patience": "stopped by patience", "max_minutes": "stopped by the time cap"}

# What each trainer's curves show: (epoch record key, label) on the left axis (losses) and the right (validation).
Keys = tuple[tuple[str, str], ...]
SASREC_CURVES: tuple[Keys, Keys] = ((("loss", "train loss"),), (("valid_recall@10", "valid R@10"),))
ROUTER_CURVES: tuple[Keys, Keys] = (
    (("loss", "train loss"), ("generative_loss", "generative loss"), ("ann_loss", "ANN loss")),
    (("valid_recall@10_generative", "valid R@10 generative"), ("valid_recall@10_cosine", "valid R@10 cosine")),
)
RERANKER_CURVES: tuple[Keys, Keys] = (
    (("loss", "DPO loss"),),
    (("train_accuracy", "train preference accuracy"), ("valid_accuracy", "valid preference accuracy")),
)
RQVAE_CURVES: tuple[Keys, Keys] = (  # the loss is left out: its scale (hundreds) would flatten the reconstruction
    (("recon_mse", "reconstruction MSE (standardized)"),),
    (("utilization", "least-used level's utilization"),),
)
RQKMEANS_CURVES: tuple[Keys, Keys] = ((("residual_mse", "residual MSE"),), (("utilization", "utilization"),))


@dataclass(frozen=True)
class CurvePanel:
    """One training plot: its lines, the kept epoch and a sentence on how training went."""

    title: str
    lines: tuple[Line, ...]
    xlabel: str = "epoch"
    left_label: str = "loss"
    right_label: str = "validation"
    best: int | None = None
    note: str = ""
    section: str = "training"  # where the page shows it: "training" (the curves) or "semantic_ids" (codebooks)

    def png(self) -> str:
        return curves_png(self.title, self.lines, self.xlabel, self.left_label, self.right_label, self.best)


@dataclass(frozen=True)
class RunReport:
    """Everything the page shows, as plain values."""

    document: Mapping[str, Any]  # the evaluation document (test, valid, semantic_ids, serving)
    facts: Mapping[str, str]  # run id, profile, dataset, date, ... in display order
    serving_reason: str  # why the served model is the one served
    codes: np.ndarray  # [items, levels] every item's codes (the USID table's)
    codebook_size: int
    panels: Sequence[CurvePanel] = ()
    study: Sequence[Mapping[str, Any]] = ()  # the reranker's study rows, with deltas against the base row
    study_users: Mapping[str, int] = field(default_factory=dict)  # train / held_out
    served_variant: str = ""  # the study row label of the served reranker


def _value(value: Any) -> float:
    """An epoch figure as one number; a per-level list (RQ-VAE's utilization) by its smallest entry."""
    return float(min(value)) if isinstance(value, list | tuple) else float(value)


def log_panel(
    title: str,
    log: TrainingLog | None,
    curves: tuple[Keys, Keys],
    right_label: str,
    x_key: str = "epoch",
    left_label: str = "loss",
) -> CurvePanel | None:
    """A panel of the log's figures named in ``curves`` (left keys, right keys); None without epochs."""
    if log is None or not log.epochs:
        return None
    records = log.epochs
    x = [r[x_key] for r in records]
    lines = tuple(
        Line(label, x, [_value(r[key]) for r in records], right=side == 1)
        for side, keys in enumerate(curves)
        for key, label in keys
        if key in records[0]
    )
    note = [f"{len(records)} {x_key}s", duration(log.seconds)]
    if log.best_epoch >= 0:
        note[1:1] = [f"kept epoch {log.best_epoch} ({log.selection} {log.best_score:.4f})", _STOPS[log.stopped_by]]
    best = log.best_epoch if log.best_epoch >= 0 else None
    return CurvePanel(title, lines, x_key, left_label, right_label, best, ", ".join(note))


def training_panels(
    sasrec: TrainingLog | None,
    router: TrainingLog | None,
    reranker: TrainingLog | None,
    variants: Mapping[str, Sequence[Mapping[str, Any]]],
    codebooks: TrainingLog | None,
) -> list[CurvePanel]:
    """The run's training plots: SASRec, the router, the served reranker, every study variant, the codebooks."""
    panels = [
        log_panel("SASRec", sasrec, SASREC_CURVES, "valid Recall@10"),
        log_panel("Router", router, ROUTER_CURVES, "valid Recall@10"),
        log_panel("Reranker (served variant)", reranker, RERANKER_CURVES, "preference accuracy"),
    ]
    if variants:
        lines = tuple(
            Line(name, [r["epoch"] for r in records], [r["valid_accuracy"] for r in records])
            for name, records in variants.items()
            if records
        )
        panels.append(
            CurvePanel(
                "Reranker study: every variant",
                lines,
                left_label="valid preference accuracy",
                note="validation preference accuracy per epoch of each variant (held-out users' hard pairs)",
            )
        )
    if codebooks is not None and codebooks.epochs:
        by_level = "level" in codebooks.epochs[0] and "epoch" not in codebooks.epochs[0]
        curves, x_key = (RQKMEANS_CURVES, "level") if by_level else (RQVAE_CURVES, "epoch")
        error = "residual MSE" if by_level else "reconstruction MSE"
        panel = log_panel("Codebooks training", codebooks, curves, "utilization", x_key, left_label=error)
        panels.append(dataclasses.replace(panel, section="semantic_ids") if panel is not None else None)
    return [panel for panel in panels if panel is not None]


def render_html(report: RunReport) -> str:
    """The page: facts, the served model and why, the evaluation, channels, codebooks, curves, the study."""
    doc = report.document
    sections = [
        _pair(_facts(report.facts), _serving(doc, report.serving_reason)),
        _evaluation(doc),
        _channels(doc),
        _codebooks(doc, report.codes, report.codebook_size, _in(report.panels, "semantic_ids")),
        _curves(_in(report.panels, "training")),
        _study(report.study, report.study_users, report.served_variant),
    ]
    title = f"Run report {report.facts.get('run id', '')}".strip()
    return _PAGE.format(title=_e(title), summary=_e(_summary(doc)), body="\n".join(sections))


def _e(value: Any) -> str:
    return html.escape(str(value))


class _Shown(str):
    """A number already formatted for display (a percentage, ``16 / 256``): right-aligned, shown as is."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number | _Shown) and not isinstance(value, bool)


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, str) or not _is_number(value):
        return _e(value)
    return f"{value:.{digits}f}" if isinstance(value, float | np.floating) else str(value)


def _cell(value: Any, bold: bool) -> str:
    """A table cell: numbers right-aligned (class ``num``), text left."""
    text = f"<b>{_number(value)}</b>" if bold else _number(value)
    return f'<td class="num">{text}</td>' if _is_number(value) else f"<td>{text}</td>"


def _pair(left: str, right: str) -> str:
    """Two blocks side by side (a table and its plot, two tables), so the page reads without scrolling far."""
    return f'<div class="pair"><div>{left}</div><div>{right}</div></div>'


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    marked: Iterable[int] = (),
    bold: Iterable[tuple[int, int]] = (),
) -> str:
    """An HTML table of escaped cells; ``marked`` rows are highlighted, ``bold`` (row, column) cells emphasized."""
    marked, bold = set(marked), set(bold)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(_cell(cell, (i, j) in bold) for j, cell in enumerate(row))
        body.append(f'<tr class="marked">{cells}</tr>' if i in marked else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _image(png: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{png}">'


def _summary(doc: Mapping[str, Any]) -> str:
    test = doc["test"]
    setting = "history excluded from ranking" if test["protocol"]["exclude_history"] else "history not masked"
    return f"Test users: {test['users']}, items: {test['n_items']}, full-catalog ranking, {setting}."


def _facts(facts: Mapping[str, str]) -> str:
    rows = "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in facts.items())
    return f'<section><h2>Run</h2><table class="facts">{rows}</table></section>'


def _serving(doc: Mapping[str, Any], reason: str) -> str:
    serving = doc["serving"]
    model = serving["model"]
    metrics = doc["test"]["metrics"]
    ours = metrics[model]["recall@10"] if model in metrics else serving["recall@10"]
    better = [name for name in metrics if metrics[name]["recall@10"] > ours]
    if better:
        names = ", ".join(f"{name} ({metrics[name]['recall@10']:.4f})" for name in better)
        standing = f"On this run {names} {'has' if len(better) == 1 else 'have'} a higher test Recall@10."
    else:
        standing = f"On this run it has the best test Recall@10 of the {len(metrics)} models measured."
    return (
        f'<section><h2>Serving model</h2><div class="serving"><p class="model">{_e(model)}</p>'
        f"<p>Test Recall@10 <b>{serving['recall@10']:.4f}</b>, NDCG@10 <b>{serving['ndcg@10']:.4f}</b>; "
        f"the least-used codebook level uses {serving['min_codebook_utilization']:.1%} of its codes.</p>"
        f"<p>Why: {_e(reason)}</p><p>{_e(standing)} The promotion gate compares these figures with the "
        "champion's.</p></div></section>"
    )


def _metrics_table(metrics: Mapping[str, Mapping[str, float]], serving: str) -> str:
    names = list(metrics)
    rows = [[name, *(metrics[name].get(c, float("nan")) for c in METRIC_COLUMNS)] for name in names]
    bold = []
    for j, column in enumerate(METRIC_COLUMNS, start=1):
        top = max(metrics[name].get(column, float("-inf")) for name in names)
        bold += [(i, j) for i, name in enumerate(names) if metrics[name].get(column) == top]
    marked = [i for i, name in enumerate(names) if name == serving]
    return _table(["model", *METRIC_COLUMNS], rows, marked, bold)


def _evaluation(doc: Mapping[str, Any]) -> str:
    tables = []
    for split in ("test", "valid"):
        if split in doc:
            part = doc[split]
            heading = f"<h3>{SPLIT_TITLES[split]}: {part['users']}, ranked against {part['n_items']} items</h3>"
            tables.append(heading + _metrics_table(part["metrics"], doc["serving"]["model"]))
    return (
        "<section><h2>Evaluation</h2>"
        + (_pair(*tables) if len(tables) == 2 else "".join(tables))
        + '<p class="note">Best of each column in bold; the served model\'s row is highlighted. Leave-one-out: '
        "each user's last interaction is the test target, the one before it the validation target.</p></section>"
    )


def _channel_names(part: Mapping[str, Any]) -> dict[str, str]:
    prefix, ann = part.get("prefix_channel", {}), part.get("ann_channel", {})
    return {
        "prefix": f"prefix (top {prefix.get('prefixes', '?')} at depth {prefix.get('depth', '?')})",
        "ann": f"ANN ({ann.get('kind', '?')}, top {ann.get('top_n', '?')})",
        "union": "union",
    }


def _channels(doc: Mapping[str, Any]) -> str:
    rows, points = [], []
    for split in ("test", "valid"):
        part = doc.get(split, {})
        if "channels" not in part:
            continue
        c = part["channels"]
        for key, name in _channel_names(part).items():
            coverage, candidates = c[f"coverage_{key}"], c[f"candidates_{key}"]
            rows.append((split, name, coverage, _Shown(f"{candidates:.1f}")))
            points.append((name, f"{split} users", candidates, coverage))
    if not rows:
        return ""
    costs = doc["test"].get("retrieval_ms_per_user", {})
    cost = ", ".join(f"{stage} {ms:.2f}" for stage, ms in costs.items())
    table = _table(["users", "channel", "coverage", "candidates per user"], rows) + (
        '<p class="note">Coverage: share of users whose target is among the channel\'s candidates; the union is '
        f"what the rankings reorder. Retrieval cost on the test users, ms per user: {_e(cost)}.</p>"
    )
    return (
        "<section><h2>Candidates: channel coverage vs candidates</h2>"
        + _pair(table, _image(channels_png(points), "channel coverage vs candidates"))
        + "</section>"
    )


def _codebooks(doc: Mapping[str, Any], codes: np.ndarray, codebook_size: int, panels: Sequence[CurvePanel]) -> str:
    semantic = doc.get("semantic_ids", {})
    utilization = semantic.get("utilization_per_level", [])
    rows = []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=codebook_size)
        share = utilization[level] if level < len(utilization) else float((counts > 0).mean())
        used = _Shown(f"{int((counts > 0).sum())} / {codebook_size}")
        rows.append((level + 1, _Shown(f"{share:.1%}"), used, int(counts.max())))
    table = _table(["level", "utilization", "codes used", "items on the busiest code"], rows) + (
        f'<p class="note">Codebooks {_e(semantic.get("tokenizer_version", ""))}, {len(codes)} items. In the plot, a '
        "flat line is a well-used level and a cliff is collapse (symlog scale).</p>"
    )
    usage = _image(code_usage_png(codes, codebook_size), "code usage per level")
    # With a training curve: table and usage left, the curve right; else the usage plot beside the table.
    left, right = (table + usage, "".join(_figure(p) for p in panels)) if panels else (table, usage)
    return f"<section><h2>Semantic IDs: codebook usage per level</h2>{_pair(left, right)}</section>"


def _in(panels: Sequence[CurvePanel], section: str) -> list[CurvePanel]:
    return [panel for panel in panels if panel.section == section]


def _figure(panel: CurvePanel) -> str:
    caption = f"<figcaption><b>{_e(panel.title)}</b>: {_e(panel.note)}</figcaption>"
    return f"<figure>{_image(panel.png(), panel.title)}{caption}</figure>"


def _curves(panels: Sequence[CurvePanel]) -> str:
    if not panels:
        return ""
    figures = "".join(_figure(panel) for panel in panels)
    return f'<section><h2>Training curves</h2><div class="grid">{figures}</div></section>'


def _study(rows: Sequence[Mapping[str, Any]], users: Mapping[str, int], served: str) -> str:
    if not rows:
        return ""
    headers = ["variant", "users", "R@10", "ΔR@10", "N@10", "ΔN@10", "coverage", "candidates", "valid pref. acc."]
    body = [
        (
            r["variant"],
            r["users"],
            r["recall@10"],
            _Shown(f"{r.get('delta_recall@10', 0.0):+.1%}"),
            r["ndcg@10"],
            _Shown(f"{r.get('delta_ndcg@10', 0.0):+.1%}"),
            r["coverage"],
            _Shown(f"{r['candidates_per_user']:.1f}"),
            "" if r.get("valid_preference_accuracy") is None else r["valid_preference_accuracy"],
        )
        for r in rows
    ]
    marked = [i for i, r in enumerate(rows) if r["variant"] == served]
    who = ""
    if users:
        who = (
            f" Trained on the validation targets of {users.get('train', '?')} users; {users.get('held_out', '?')} "
            "held out measure the validation rows."
        )
    return (
        "<section><h2>Reranker diagnostics: the DPO study</h2>"
        + _table(headers, body, marked)
        + f'<p class="note">Deltas are relative to the base (cosine) row of the same users; the served variant\'s '
        f"rows are highlighted.{_e(who)}</p></section>"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #1f2328; padding: 0 16px; }}
h1 {{ margin-bottom: 4px; }}
h2 {{ border-bottom: 1px solid #d0d7de; padding-bottom: 3px; margin: 18px 0 8px; font-size: 1.3em; }}
h3 {{ font-size: 1em; margin: 16px 0 6px; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 6px 0; }}
th, td {{ border: 1px solid #d0d7de; padding: 2px 8px; text-align: left; }}
th {{ background: #f6f8fa; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.facts td {{ font-family: ui-monospace, Menlo, monospace; font-size: 12px; word-break: break-all; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 24px; align-items: start; }}
tr.marked td {{ background: #fff8c5; }}
.summary {{ color: #57606a; margin-top: 0; }}
.note {{ color: #57606a; font-size: 13px; }}
.serving {{ background: #f6f8fa; border-left: 4px solid #2da44e; padding: 8px 16px; }}
.serving .model {{ font-size: 1.3em; font-weight: bold; font-family: ui-monospace, Menlo, monospace; margin: 4px 0; }}
.grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 12px 24px; }}
figure {{ margin: 0; }}
figcaption {{ font-size: 13px; color: #57606a; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="summary">{summary}</p>
{body}
</body>
</html>
"""
