"""The run report: one self-contained HTML page rendered from plain inputs."""

import re

import numpy as np

from sid_platform.evaluation.run_report import RunReport, render_html, training_panels
from sid_platform.training import TrainingLog

METRICS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20")


def split(users: int, best: str) -> dict:
    models = ("popularity", "sasrec", "router_hybrid_dpo")
    level = {m: 0.5 if m == best else 0.1 if m == "popularity" else 0.2 for m in models}
    metrics = {m: {c: level[m] + 0.01 * i for i, c in enumerate(METRICS)} for m in models}
    return {
        "protocol": {"exclude_history": False, "split": "test"},
        "users": users,
        "n_items": 50,
        "metrics": metrics,
        "channels": {
            **{f"coverage_{c}": v for c, v in (("prefix", 0.4), ("ann", 0.6), ("union", 0.7))},
            **{f"candidates_{c}": v for c, v in (("prefix", 20.0), ("ann", 30.0), ("union", 40.0))},
        },
        "retrieval_ms_per_user": {"encode": 0.1, "beam_search": 1.0},
        "prefix_channel": {"depth": 1, "prefixes": 4},
        "ann_channel": {"kind": "flat", "top_n": 30},
    }


def log(keys: dict[str, list[float]], best: int) -> TrainingLog:
    epochs = [{"epoch": i, **{k: v[i] for k, v in keys.items()}} for i in range(len(next(iter(keys.values()))))]
    return TrainingLog(selection="score", epochs=epochs, best_epoch=best, best_score=0.3, seconds=75.0)


def report(**changes) -> RunReport:
    document = {
        "test": split(30, "sasrec"),
        "valid": split(30, "router_hybrid_dpo"),
        "semantic_ids": {"tokenizer_version": "abc123", "utilization_per_level": [1.0, 0.75]},
        "serving": {"model": "router_hybrid_dpo", "recall@10": 0.12, "ndcg@10": 0.11, "min_codebook_utilization": 0.75},
    }
    codes = np.stack([np.arange(40) % 4, np.arange(40) % 3], axis=1)
    sasrec = log({"loss": [3.0, 2.0, 1.5], "valid_recall@10": [0.1, 0.3, 0.2]}, best=1)
    variant = log({"loss": [1.0, 0.8], "train_accuracy": [0.6, 0.7], "valid_accuracy": [0.55, 0.65]}, best=1)
    rqvae = log({"loss": [2.0, 1.0], "recon_mse": [0.9, 0.5], "utilization": [[1.0, 0.5], [1.0, 0.75]]}, best=-1)
    study = [
        {"variant": "base (cosine)", "users": "test", "recall@10": 0.1, "ndcg@10": 0.05, "coverage": 0.7,
         "candidates_per_user": 40.0, "valid_preference_accuracy": None, "delta_recall@10": 0.0, "delta_ndcg@10": 0.0},
        {"variant": "bounded, hard negatives", "users": "test", "recall@10": 0.12, "ndcg@10": 0.06, "coverage": 0.7,
         "candidates_per_user": 40.0, "valid_preference_accuracy": 0.8, "delta_recall@10": 0.2, "delta_ndcg@10": 0.2},
    ]  # fmt: skip
    values = {
        "document": document,
        "facts": {"run id": "r-1", "profile": "test", "dataset": "synthetic", "history masking": "history not masked"},
        "serving_reason": "it is the <served> one.",
        "codes": codes,
        "codebook_size": 4,
        "panels": training_panels(sasrec, None, None, {"bounded, hard negatives": variant.epochs}, rqvae),
        "study": study,
        "study_users": {"train": 20, "held_out": 5},
        "served_variant": "bounded, hard negatives",
    }
    return RunReport(**{**values, **changes})


def test_the_page_has_every_section_and_embeds_its_images():
    page = render_html(report())
    for heading in ("Run", "Serving model", "Evaluation", "Candidates: channel coverage vs candidates",
                    "Semantic IDs: codebook usage per level", "Training curves", "Reranker diagnostics: the DPO study"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in page, heading
    assert "Test users: 30" in page and "Validation users: 30" in page and "history not masked" in page
    assert '<p class="model">router_hybrid_dpo</p>' in page and "it is the &lt;served&gt; one." in page  # escaped
    assert "On this run sasrec (0.5200) has a higher test Recall@10." in page
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)
    # Channels, code usage, and the panels: SASRec, the study's variants, the codebooks (no router/reranker log).
    assert len(images) == 5 == page.count("<img")
    assert "http" not in page.replace("http-equiv", "") and "<script" not in page and "<link" not in page
    assert "kept epoch 1 (score 0.3000), every epoch ran, 1m15s" in page
    assert '<tr class="marked"><td>bounded, hard negatives</td>' in page and '<td class="num">+20.0%</td>' in page


def test_the_best_of_each_column_is_bold_and_the_served_row_marked():
    page = render_html(report())
    test_table = page.split("<h3>Test users")[1].split("</table>")[0]
    assert test_table.count("<b>") == len(METRICS)  # sasrec leads every column on the test users
    assert '<tr class="marked"><td>router_hybrid_dpo</td>' in test_table
    assert '<td>sasrec</td><td class="num"><b>0.5000</b></td>' in test_table


def test_a_run_without_study_or_logs_still_renders():
    page = render_html(report(panels=[], study=[], study_users={}))
    assert "Training curves" not in page and "DPO study" not in page and page.count("<img") == 2


def test_a_served_model_with_the_best_recall_says_so():
    base = report()
    document = {**base.document, "serving": {**base.document["serving"], "model": "sasrec"}}
    assert "it has the best test Recall@10 of the 3 models measured" in render_html(report(document=document))
