"""Cold start: items held out of training entirely, added afterwards without retraining, then recommended.

    SID_DATA_DIR=../shared/data SID_HOME=<home of a main-job run on Beauty> \
        .venv/bin/python -m benchmarks.cold_start [--share 0.05] [--seed 0] [--router '{"epochs": 40}'] \
        [--work-dir DIR] [--name NAME]

Reads ``data_splits``, ``item_catalog`` and ``item_embeddings`` as a main-job run stored them (``make demo`` or
``python -m benchmarks.main_job``; nothing is unpickled), then:

1. holds out ``--share`` of the catalog's items (uniformly at random, ``--seed``): every interaction with them
   is removed from the training sequences and from the validation cases training early-stops on (a validation
   user whose target is held out is kept apart, for measuring only); the test cases keep them;
2. trains on the remaining items only: the codebooks (the default profile's tokenizer, fit on the kept items'
   vectors, so the held-out items' content is unseen too; ``--reuse-codebooks`` takes the stored ones instead),
   the router, SASRec and popularity, with the default profile's configs (``--router``/``--sasrec`` JSON
   overrides); ``--work-dir`` keeps their checkpoints and a rerun with the same split and configs loads them;
3. adds the held-out items with ``sid_platform.serving.cold_start.add_items`` twice (their stored MiniLM vectors,
   which is what the same encoder gives for their text; tokenized by the trained codebooks, a free suffix, the
   FAISS index extended): without borrowed vectors (the router reads a new item through its codes and content;
   SASRec has no vector for it) and with them (ranking names ending ``+borrowed``: the router's item-id vector and
   SASRec's item vector borrowed from the items under the new item's Semantic-ID prefix);
4. reports Recall@10 and NDCG@10 on the validation and test users whose target is a held-out item ("cold"), on
   the others ("warm") and on all, for the router's rankings (generative beams, hybrid by cosine, fused), SASRec
   and popularity (no training interactions: 0 on cold users), plus how often each retrieval channel reaches a
   cold test target.

Validation and test histories keep held-out items for the router (they are in the catalog once added, and it reads
them through their codes) and for SASRec with borrowed vectors; SASRec without them and popularity see those
histories without the held-out items. A history left empty gets the popularity
ranking, as the service answers one. On Beauty with 2 cores this trains a router and a SASRec: expect about the
demo's training time (about 50 minutes with the default configs). Writes
``benchmarks/results/cold_start[_<name>].json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRecCheckpoint, SASRecConfig, train_sasrec
from sid_platform.data.split import EvalCases, ItemVocab, UserSequences
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.evaluation.metrics import coverage, rank_with_scorer, ranking_metrics, top_k_from_scores
from sid_platform.progress import LogLine
from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.router import RouterCheckpoint, RouterConfig
from sid_platform.retrieval.training import train_router
from sid_platform.retrieval.trie import SidTrie, aligned_sids
from sid_platform.semantic_ids.checkpoint import CodebooksCheckpoint
from sid_platform.semantic_ids.spec import TokenizerSpec
from sid_platform.semantic_ids.usid import build_usid_table
from sid_platform.serving.cold_start import add_items

DEPTH = 20  # ranking depth computed (the metrics report @5/@10/@20)


@dataclass(frozen=True)
class ColdSplit:
    """The data with a share of items held out of training. Item indices: ``item_ids`` = kept items then held-out
    ones, so indices below ``n_kept`` are the models' trained vocabulary and the held-out items come after, in the
    order ``add_items`` appends them."""

    item_ids: list[str]
    n_kept: int
    train: list[np.ndarray]  # kept items only
    valid: EvalCases  # targets and histories of kept items only (what training early-stops on)
    test: EvalCases  # every test user; histories and targets may hold held-out items
    valid_all: EvalCases  # every validation user, held-out items kept: what a way of adding items is chosen on

    @property
    def held_ids(self) -> list[str]:
        return self.item_ids[self.n_kept :]

    def cases(self, users: str) -> EvalCases:
        return self.test if users == "test" else self.valid_all

    def cold(self, users: str = "test") -> np.ndarray:
        """[users] whether the target is a held-out item."""
        return self.cases(users).targets >= self.n_kept

    def known(self, users: str = "test") -> list[np.ndarray]:
        """The histories without held-out items (what SASRec and popularity trained without borrowing see)."""
        return [history[history < self.n_kept] for history in self.cases(users).histories]


def hold_out(sequences: UserSequences, share: float, seed: int) -> ColdSplit:
    """Hold out ``share`` of the items (at least one), chosen uniformly with ``seed``."""
    ids = sequences.vocab.item_ids
    n = len(ids)
    count = min(max(1, round(share * n)), n - 1)
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(seed).choice(n, size=count, replace=False)] = True
    order = np.concatenate([np.flatnonzero(~held), np.flatnonzero(held)])
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)  # full index -> kept-then-held index

    def kept(history: np.ndarray) -> np.ndarray:
        return position[history[~held[history]]]

    valid = sequences.valid
    keep = ~held[valid.targets]
    return ColdSplit(
        item_ids=[ids[i] for i in order],
        n_kept=n - count,
        train=[kept(s) for s in sequences.train],
        valid=EvalCases(
            [u for u, k in zip(valid.user_ids, keep, strict=True) if k],
            [kept(h) for h, k in zip(valid.histories, keep, strict=True) if k],
            position[valid.targets[keep]],
        ),
        test=EvalCases(
            list(sequences.test.user_ids),
            [position[h] for h in sequences.test.histories],
            position[sequences.test.targets],
        ),
        valid_all=EvalCases(list(valid.user_ids), [position[h] for h in valid.histories], position[valid.targets]),
    )


@dataclass(frozen=True)
class Trained:
    components: dict[str, Any]  # what add_items extends: codebooks, usid_table, router_checkpoint, faiss_index, …
    sasrec: Any
    popularity: np.ndarray  # [n_kept] training counts
    seconds: dict[str, float]


def train_on_kept(
    split: ColdSplit,
    embeddings: ItemEmbeddings,
    categories: Sequence[Sequence[str] | None] | None,
    spec: TokenizerSpec,
    router_cfg: RouterConfig,
    sasrec_cfg: SASRecConfig,
    ann: AnnIndexConfig,
    codebooks: CodebooksCheckpoint | None = None,
    on_progress: LogLine | None = print,
    work_dir: Path | None = None,
) -> Trained:
    """Codebooks (unless given), the router, its FAISS index, SASRec and popularity on the kept items only.

    With ``work_dir`` the trained checkpoints are saved there (safetensors, nothing pickled) under a key of the
    split and the configs, and a later call with the same key loads them instead of training again: another
    way of adding the items is then measured on the same models.
    """
    kept_ids = split.item_ids[: split.n_kept]
    vectors = embeddings.aligned(kept_ids)
    key = _training_key(split, embeddings, spec, router_cfg, sasrec_cfg, codebooks)
    cached = _load_trained(work_dir / key, split, embeddings, ann) if work_dir is not None else None
    if cached is not None:
        return cached
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if codebooks is None:
        tokenizer = spec.resolved(len(kept_ids)).build()
        tokenizer.fit(vectors, list(categories) if categories is not None else None, on_progress)
        codebooks = CodebooksCheckpoint.of(tokenizer, embeddings.version)
    table = build_usid_table(kept_ids, codebooks.tokenizer().encode(vectors), codebooks.version)
    seconds["codebooks"] = time.perf_counter() - started
    trie = SidTrie.for_catalog(table, kept_ids, codebooks.codebook_size)
    started = time.perf_counter()
    router, _ = train_router(
        split.train, split.valid, trie, aligned_sids(table, kept_ids), router_cfg, content=vectors,
        on_progress=on_progress,
    )  # fmt: skip
    seconds["router"] = time.perf_counter() - started
    started = time.perf_counter()
    sasrec, _ = train_sasrec(split.train, split.valid, split.n_kept, sasrec_cfg, on_progress=on_progress)
    seconds["sasrec"] = time.perf_counter() - started
    checkpoint = RouterCheckpoint.of(router, kept_ids, codebooks.version)
    trained = _assembled(split, embeddings, ann, codebooks, checkpoint, sasrec, seconds, table)
    if work_dir is not None:
        _save_trained(work_dir / key, trained, kept_ids)
    return trained


def _training_key(
    split: ColdSplit,
    embeddings: ItemEmbeddings,
    spec: TokenizerSpec,
    router_cfg: RouterConfig,
    sasrec_cfg: SASRecConfig,
    codebooks: CodebooksCheckpoint | None,
) -> str:
    """What the trained models depend on: the held-out items, the embeddings, the configs."""
    what = {
        "held": split.held_ids,
        "embeddings": embeddings.version,
        "tokenizer": asdict(spec),
        "router": asdict(router_cfg),
        "sasrec": asdict(sasrec_cfg),
        "codebooks": codebooks.version if codebooks is not None else None,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save_trained(folder: Path, trained: Trained, kept_ids: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trained.components["codebooks"].save(folder / "codebooks.safetensors")
    trained.components["router_checkpoint"].save(folder / "router.safetensors")
    SASRecCheckpoint.of(trained.sasrec, kept_ids).save(folder / "sasrec.safetensors")
    (folder / "seconds.json").write_text(json.dumps(trained.seconds))


def _load_trained(folder: Path, split: ColdSplit, embeddings: ItemEmbeddings, ann: AnnIndexConfig) -> Trained | None:
    if not (folder / "seconds.json").exists():
        return None
    codebooks = CodebooksCheckpoint.load(folder / "codebooks.safetensors")
    router = RouterCheckpoint.load(folder / "router.safetensors")
    sasrec = SASRecCheckpoint.load(folder / "sasrec.safetensors").model()
    seconds = json.loads((folder / "seconds.json").read_text())
    return _assembled(split, embeddings, ann, codebooks, router, sasrec, seconds)


def _assembled(
    split: ColdSplit,
    embeddings: ItemEmbeddings,
    ann: AnnIndexConfig,
    codebooks: CodebooksCheckpoint,
    router: RouterCheckpoint,
    sasrec: Any,
    seconds: dict[str, float],
    table: pl.DataFrame | None = None,
) -> Trained:
    """The trained models (just trained or loaded) with what ``add_items`` extends: the USID table (encoded when
    not given), the router's FAISS index, the kept items' vectors; and the popularity counts."""
    kept_ids = split.item_ids[: split.n_kept]
    vectors = embeddings.aligned(kept_ids)
    if table is None:
        table = build_usid_table(kept_ids, codebooks.tokenizer().encode(vectors), codebooks.version)
    with torch.no_grad():
        index = AnnIndex.build(router.model().item_keys().numpy(), ann)
    components = {
        "codebooks": codebooks,
        "usid_table": table,
        "router_checkpoint": router,
        "faiss_index": index,
        "item_embeddings": ItemEmbeddings(kept_ids, vectors, list(embeddings.parts), embeddings.version),
    }
    return Trained(components, sasrec, PopularityModel.fit(split.train, split.n_kept).counts, seconds)


def _figures(ranked: np.ndarray, targets: np.ndarray, cold: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for name, rows in (("cold", cold), ("warm", ~cold), ("all", np.ones_like(cold))):
        metrics = ranking_metrics(ranked[rows], targets[rows]) if rows.any() else {}
        out[name] = {key: round(value, 4) for key, value in metrics.items()}
    return out


BORROWING = {"": False, "+borrowed": True}  # ranking-name suffix → add_items(borrow_id_vectors=...)


def _rankings(
    split: ColdSplit, users: str, extended: dict[str, Any], trained: Trained, borrowed: bool, suffix: str
) -> tuple[dict[str, np.ndarray], Any]:
    """Every model's top-``DEPTH`` lists for ``users`` ("test" or "valid") over the extended catalog."""
    router = extended["router_checkpoint"]
    trie = SidTrie.for_catalog(extended["usid_table"], router.item_ids, extended["codebooks"].codebook_size)
    index, cases = extended["faiss_index"], split.cases(users)
    found = retrieve(router.model(), trie, index, cases.histories, DEPTH, index.top_n)
    n_all = len(split.item_ids)
    popularity = np.concatenate([trained.popularity, np.zeros(n_all - split.n_kept)])
    by_popularity = top_k_from_scores(popularity[None, :], DEPTH)[0]
    sasrec = np.tile(by_popularity, (len(cases), 1))
    # SASRec reads an item it has a vector for: with borrowed vectors every item, otherwise the kept ones only.
    histories = cases.histories if borrowed else split.known(users)
    scorer = extended["sasrec_model"].model().score if borrowed else trained.sasrec.score
    rows = [row for row, history in enumerate(histories) if len(history)]
    if rows:
        sasrec[rows] = rank_with_scorer(scorer, [histories[row] for row in rows], DEPTH, exclude_history=False)
    rankings = {
        f"router_generative{suffix}": found.generative,
        f"router_hybrid_cosine{suffix}": found.hybrid_cosine,
        f"router_fused{suffix}": found.fused,
        f"sasrec{suffix}": sasrec,
    }
    if not borrowed:
        rankings["popularity"] = np.tile(by_popularity, (len(cases), 1))
    return rankings, found


def evaluate(split: ColdSplit, trained: Trained, catalog: pl.DataFrame, embeddings: ItemEmbeddings) -> dict[str, Any]:
    """Add the held-out items to the trained components, without and with borrowed id vectors, then rank every
    validation and test user with each model."""
    rows = pl.DataFrame({"item_id": split.held_ids}).join(catalog, on="item_id", how="left", maintain_order="left")
    components = {
        **trained.components,
        "sasrec_model": SASRecCheckpoint.of(trained.sasrec, split.item_ids[: split.n_kept]),
    }
    figures: dict[str, dict[str, Any]] = {"valid": {}, "test": {}}
    channels: dict[str, float] = {}
    added: dict[str, Any] = {}
    for suffix, borrowed in BORROWING.items():
        started = time.perf_counter()
        extended, report = add_items(components, rows, embeddings.aligned(split.held_ids), borrow_id_vectors=borrowed)
        added[f"seconds{suffix}"] = round(time.perf_counter() - started, 2)
        added.update({k: v for k, v in report.as_dict().items() if k != "sids"})
        if extended["router_checkpoint"].item_ids != split.item_ids:
            raise AssertionError("the extended router's items are not the kept items followed by the held-out ones")
        for users in ("valid", "test"):
            rankings, found = _rankings(split, users, extended, trained, borrowed, suffix)
            cases, cold = split.cases(users), split.cold(users)
            for name, ranked in rankings.items():
                figures[users][name] = _figures(ranked, cases.targets, cold)
            if users == "test" and not borrowed:
                channels = {
                    name: round(coverage([c for c, is_cold in zip(items, cold, strict=True) if is_cold], cases.targets[cold]), 4)
                    for name, items in (("prefix", found.prefix), ("ann", found.ann), ("union", found.candidates))
                }  # fmt: skip
    return {
        "figures": figures["test"],
        "valid_figures": figures["valid"],
        "cold_target_coverage": channels,
        "add_items": added,
    }


def run(
    sequences: UserSequences,
    catalog: pl.DataFrame,
    embeddings: ItemEmbeddings,
    *,
    share: float = 0.05,
    seed: int = 0,
    spec: TokenizerSpec | None = None,
    router_cfg: RouterConfig | None = None,
    sasrec_cfg: SASRecConfig | None = None,
    ann: AnnIndexConfig | None = None,
    codebooks: CodebooksCheckpoint | None = None,
    on_progress: LogLine | None = print,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """The whole benchmark on given data; returns the JSON payload (without provenance)."""
    spec, router_cfg = spec or TokenizerSpec(), router_cfg or RouterConfig()
    sasrec_cfg, ann = sasrec_cfg or SASRecConfig(), ann or AnnIndexConfig()
    split = hold_out(sequences, share, seed)
    ordered = pl.DataFrame({"item_id": split.item_ids[: split.n_kept]})
    categories = ordered.join(catalog, on="item_id", how="left", maintain_order="left")["categories"].to_list()
    trained = train_on_kept(
        split, embeddings, categories, spec, router_cfg, sasrec_cfg, ann, codebooks, on_progress, work_dir
    )
    result = evaluate(split, trained, catalog, embeddings)
    return {
        "share": share,
        "seed": seed,
        "items": len(split.item_ids),
        "held_out_items": len(split.held_ids),
        "test_users": len(split.test),
        "cold_test_users": int(split.cold("test").sum()),
        "valid_users": len(split.valid_all),
        "cold_valid_users": int(split.cold("valid").sum()),
        "codebooks": "stored (fit on every item's vectors)" if codebooks is not None else "fit on the kept items",
        "configs": {"tokenizer": asdict(spec), "router": asdict(router_cfg), "sasrec": asdict(sasrec_cfg)},
        "train_seconds": {key: round(value, 1) for key, value in trained.seconds.items()},
        **result,
    }


def cold_table(payload: dict[str, Any]) -> str:
    """Markdown: Recall@10 per model on cold and all validation users, then Recall@10 / NDCG@10 on cold, warm and
    all test users."""
    lines = [
        "| model | valid cold R@10 | valid all R@10 | cold R@10 | cold N@10 | warm R@10 | all R@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figures in payload["figures"].items():
        valid = payload["valid_figures"][name]
        cells = [valid["cold"].get("recall@10"), valid["all"].get("recall@10")]
        cells += [figures["cold"].get("recall@10"), figures["cold"].get("ndcg@10")]
        cells += [figures["warm"].get("recall@10"), figures["all"].get("recall@10")]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.4f}" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from benchmarks.results_file import write_result
    from sid_platform.artifacts import read_artifact
    from sid_platform.settings import data_home
    from sid_platform.storage import LocalBlobStore

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--share", type=float, default=0.05, help="share of the catalog's items held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--router", default="{}", help="RouterConfig overrides, JSON")
    parser.add_argument("--sasrec", default="{}", help="SASRecConfig overrides, JSON")
    parser.add_argument("--reuse-codebooks", action="store_true", help="the stored codebooks (fit on every item)")
    parser.add_argument("--name", default="", help="suffix of the result file: cold_start_<name>.json")
    parser.add_argument("--work-dir", type=Path, help="keeps the trained checkpoints; a rerun reuses them")
    args = parser.parse_args()
    assets = LocalBlobStore(data_home() / "assets")  # read as the IO manager stored them; nothing is unpickled
    splits: pl.DataFrame = read_artifact(assets, "data_splits")
    catalog: pl.DataFrame = read_artifact(assets, "item_catalog")
    embeddings: ItemEmbeddings = read_artifact(assets, "item_embeddings")
    codebooks = read_artifact(assets, "codebooks") if args.reuse_codebooks else None
    sequences = UserSequences.from_splits(splits, ItemVocab.from_catalog(catalog))
    started = time.perf_counter()
    payload = run(
        sequences,
        catalog,
        embeddings,
        share=args.share,
        seed=args.seed,
        router_cfg=RouterConfig(**json.loads(args.router)),
        sasrec_cfg=SASRecConfig(**json.loads(args.sasrec)),
        codebooks=codebooks,
        work_dir=args.work_dir,
    )
    payload["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(cold_table(payload))
    print("cold targets reached by channel:", payload["cold_target_coverage"])
    print(f"wrote {write_result('cold_start' + (f'_{args.name}' if args.name else ''), payload)}")


if __name__ == "__main__":
    main()
