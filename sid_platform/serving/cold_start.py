"""New items into a trained bundle without retraining (cold start): embed → tokenize → suffix → index.

Why it works without retraining: the codebooks map any vector of the catalog's embedding space to codes, so a new
item's text, embedded by the same encoders, lands in the prefix tree next to the items it resembles. The router
reads an item through its code embeddings and its projected content vector, so the new item gets a token, an ANN
key and a place in the trie the constrained beam search walks: it is retrievable through its prefix, the ANN
channel and the generative beams before its first interaction. Existing items keep their rows, indices and IDs;
only rows are appended.

What a new item lacks is an id-based vector: the router's item-id embedding and SASRec's item embedding, which hold
what interactions taught. By default it borrows them from the items under its Semantic-ID prefix
(``borrowed_rows``), so SASRec, which otherwise cannot rank an item it never saw, ranks new items too.

``add_items`` works on bundle components by name (the registered bundle's, or those a benchmark builds), so the
Dagster job, the registry and the benchmark share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch

from sid_platform.baselines.sasrec import SASRecCheckpoint
from sid_platform.embed.pipeline import EmbeddingSpec, ItemEmbeddings, embed_like
from sid_platform.progress import LogLine
from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.router import RouterCheckpoint
from sid_platform.semantic_ids.checkpoint import CodebooksCheckpoint
from sid_platform.semantic_ids.prefix_index import build_prefix_index
from sid_platform.semantic_ids.usid import code_columns, extend_usid_table, table_levels

ITEM_EMBEDDINGS = "item_embeddings"
ITEM_TITLES = "item_titles"
SASREC = "sasrec_model"
EXTENDED = ("usid_table", "prefix_index", "router_checkpoint", "faiss_index")  # always rewritten


@dataclass(frozen=True)
class ColdStartReport:
    """What was added: the new items' IDs, the ids skipped as already known, and how the catalog grew."""

    added: dict[str, str]  # item id → its full Semantic ID, in the order added
    skipped: list[str] = field(default_factory=list)  # ids the catalog already had
    items_before: int = 0
    items_after: int = 0
    new_prefixes: int = 0  # level-1 … L prefixes that no item had before
    shared_full_codes: int = 0  # new items whose codes an existing item already had (told apart by the suffix)
    suffix_vocab: tuple[int, int] = (0, 0)  # the router's suffix vocabulary before and after
    borrowed: tuple[str, ...] = ()  # the components whose id-based vectors the new items borrowed

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "skipped": len(self.skipped),
            "items_before": self.items_before,
            "items_after": self.items_after,
            "new_prefixes": self.new_prefixes,
            "shared_full_codes": self.shared_full_codes,
            "suffix_vocab_before": self.suffix_vocab[0],
            "suffix_vocab_after": self.suffix_vocab[1],
            "borrowed_id_vectors": list(self.borrowed),
            "sids": self.added,
        }


def borrowed_rows(known_codes: np.ndarray, rows: np.ndarray, new_codes: np.ndarray) -> np.ndarray:
    """[n_new, d]: for each new item, the direction of the mean of the known items' ``rows`` under the deepest code
    prefix it shares with any of them, at their mean length (the mean of several vectors is shorter than each, and
    a dot-product score would read that as "unlikely"); all rows' when it shares not even the first code.

    Why: an id-based vector (the router's item-id embedding, SASRec's item embedding) holds what interactions
    taught and content does not, and a new item has none. The items it shares its Semantic-ID prefix with are those
    the codebooks found most like it, so their mean is the estimate that the codes make cheap: one dictionary per
    level, no retraining. ``known_codes`` [n_known, levels] and ``new_codes`` [n_new, levels] hold codes only.
    """
    known_codes, new_codes = np.asarray(known_codes), np.asarray(new_codes)
    rows = np.asarray(rows, dtype=np.float64)
    if not len(rows):
        raise ValueError("no known items to borrow vectors from")
    mean = rows.mean(0)  # for an item that shares no code: the catalog's direction, at a typical length
    out = np.tile(mean / max(np.linalg.norm(mean), 1e-12) * np.linalg.norm(rows, axis=1).mean(), (len(new_codes), 1))
    found = np.zeros(len(new_codes), dtype=bool)
    n_known = len(known_codes)
    for depth in range(known_codes.shape[1], 0, -1):  # deepest first: a new item takes its closest group
        prefixes = np.concatenate([known_codes[:, :depth], new_codes[:, :depth]])
        _, group = np.unique(prefixes, axis=0, return_inverse=True)
        group = group.reshape(-1)
        sums = np.zeros((group.max() + 1, rows.shape[1]))
        np.add.at(sums, group[:n_known], rows)
        norms = np.bincount(group[:n_known], weights=np.linalg.norm(rows, axis=1), minlength=len(sums))
        counts = np.bincount(group[:n_known], minlength=len(sums))
        mine = group[n_known:]
        take = ~found & (counts[mine] > 0)
        mean = sums[mine[take]] / counts[mine[take], None]
        length = norms[mine[take]] / counts[mine[take]]
        out[take] = mean * (length / np.maximum(np.linalg.norm(mean, axis=1), 1e-12))[:, None]
        found |= take
    return out.astype(np.float32)


def new_item_vectors(
    items: pl.DataFrame,
    embeddings: ItemEmbeddings,
    embedding_config: Mapping[str, Any] | None = None,
    on_progress: LogLine | None = None,
) -> np.ndarray:
    """The new catalog rows embedded as the bundle's items were (``embedding_config``: the run's
    ``item_embeddings`` op config, for weights, template and model folders)."""
    known = {f for f in EmbeddingSpec.__dataclass_fields__}
    config = {key: value for key, value in (embedding_config or {}).items() if key in known}
    for key in ("encoders", "weights"):
        if key in config:
            config[key] = tuple(config[key] or ())
    return embed_like(items, embeddings, EmbeddingSpec(**config), on_progress=on_progress)


def add_items(
    components: Mapping[str, Any],
    items: pl.DataFrame,
    vectors: np.ndarray | None = None,
    *,
    embedding_config: Mapping[str, Any] | None = None,
    borrow_id_vectors: bool = True,
    on_progress: LogLine | None = None,
) -> tuple[dict[str, Any], ColdStartReport]:
    """The components with ``items`` (catalog rows, normalized schema) added; nothing is retrained.

    Reads ``codebooks``, ``usid_table``, ``router_checkpoint`` and ``faiss_index`` (and ``item_embeddings``,
    ``item_titles`` when present, extended too). ``vectors`` (one row per item, in the embedding space of the
    catalog) skips embedding; otherwise the items are embedded like the catalog's (``new_item_vectors``).
    With ``borrow_id_vectors`` a new item's id-based vectors (the router's item-id embedding, and SASRec's item
    embedding when the components hold ``sasrec_model``, which can then rank it) are borrowed from the items under
    its Semantic-ID prefix (``borrowed_rows``); without it the router reads it through codes and content alone and
    SASRec is left as it was. Returns new component values; the given ones are not modified.
    """
    codebooks: CodebooksCheckpoint = components["codebooks"]
    table: pl.DataFrame = components["usid_table"]
    router: RouterCheckpoint = components["router_checkpoint"]
    index: AnnIndex = components["faiss_index"]
    embeddings = components.get(ITEM_EMBEDDINGS)
    if router.tokenizer_version != codebooks.version or set(table["tokenizer_version"].unique()) - {codebooks.version}:
        raise ValueError("the router, the USID table and the codebooks come from different tokenizers")
    if index.size != len(router.item_ids):
        raise ValueError(f"the FAISS index holds {index.size} items, the router {len(router.item_ids)}")
    ids = items["item_id"].cast(pl.String).to_list()
    known = set(table["item_id"].to_list()) | set(router.item_ids)
    fresh: list[int] = []  # rows of the new items (the first of a repeated id)
    skipped: list[str] = []
    for row, item in enumerate(ids):
        if item in known:
            skipped.append(item)
        else:
            fresh.append(row)
            known.add(item)
    new_ids = [ids[row] for row in fresh]
    if vectors is None:
        if not isinstance(embeddings, ItemEmbeddings):
            raise ValueError("no item vectors given and the bundle has no item_embeddings to embed them like")
        vectors = new_item_vectors(items[fresh], embeddings, embedding_config, on_progress) if fresh else None
    else:
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors) != len(ids):
            raise ValueError(f"{len(vectors)} vectors for {len(ids)} items")
        vectors = vectors[fresh]
    out = dict(components)
    levels = table_levels(table)
    suffix_before = router.vocab_sizes[-1]
    if not new_ids:
        report = ColdStartReport({}, skipped, len(router.item_ids), len(router.item_ids), 0, 0, (suffix_before,) * 2)
        return out, report
    assert vectors is not None
    codes = codebooks.tokenizer().encode(np.ascontiguousarray(vectors, dtype=np.float32))
    extended = extend_usid_table(table, new_ids, codes, codebooks.version)
    added = extended.tail(len(new_ids))
    sids = added.select([*code_columns(levels), "suffix"]).to_numpy()
    content = vectors if "content" in router.weights else None
    id_rows, borrowed = None, set()
    if borrow_id_vectors and "item_emb.weight" in router.weights:
        trained = router.weights.get("item_id_known", torch.ones(len(router.item_ids), dtype=torch.bool))
        known_codes = router.weights["item_sids"][trained, :levels].numpy()  # the router's own IDs: codes, suffix
        id_rows = borrowed_rows(known_codes, router.weights["item_emb.weight"][trained].numpy(), codes)
        borrowed.add("router_checkpoint")
    grown = router.with_items(new_ids, sids, content, id_rows)
    model = grown.model()
    with torch.no_grad():
        rows = torch.arange(len(router.item_ids), len(grown.item_ids))
        keys = model.item_keys(model.item_tokens(rows)).numpy()
    out.update(
        usid_table=extended,
        prefix_index=build_prefix_index(extended).to_frame(),
        router_checkpoint=grown,
        faiss_index=index.with_vectors(keys),
    )
    sasrec = components.get(SASREC)
    if borrow_id_vectors and isinstance(sasrec, SASRecCheckpoint):
        aligned = pl.DataFrame({"item_id": sasrec.item_ids}).join(
            table, on="item_id", how="left", maintain_order="left"
        )
        if missing := aligned.filter(pl.col("sid").is_null())["item_id"].head(3).to_list():
            raise ValueError(f"sasrec_model holds items the USID table lacks, e.g. {missing}")
        known_codes = aligned.select(code_columns(levels)).to_numpy()
        sasrec_rows = sasrec.weights["item_emb.weight"][1:].numpy()  # row 0 is padding
        out[SASREC] = sasrec.with_items(new_ids, borrowed_rows(known_codes, sasrec_rows, codes))
        borrowed.add(SASREC)
    if isinstance(embeddings, ItemEmbeddings):
        out[ITEM_EMBEDDINGS] = embeddings.extended(new_ids, vectors)
    titles = components.get(ITEM_TITLES)
    if isinstance(titles, pl.DataFrame):
        title = items[fresh]["title"] if "title" in items.columns else pl.Series([None] * len(fresh))
        new_titles = pl.DataFrame({"item_id": new_ids, "title": title.cast(pl.String).to_list()})
        out[ITEM_TITLES] = pl.concat([titles, new_titles.select(titles.columns).cast(titles.schema)])
    old_codes = table.select(code_columns(levels)).iter_rows()
    old_prefixes = {tuple(row[:depth]) for row in old_codes for depth in range(1, levels + 1)}
    new_prefixes = {tuple(row[:depth]) for row in codes.tolist() for depth in range(1, levels + 1)} - old_prefixes
    full_codes = {prefix for prefix in old_prefixes if len(prefix) == levels}
    report = ColdStartReport(
        added=dict(zip(new_ids, added["sid"].to_list(), strict=True)),
        skipped=skipped,
        items_before=len(router.item_ids),
        items_after=len(grown.item_ids),
        new_prefixes=len(new_prefixes),
        shared_full_codes=sum(tuple(row) in full_codes for row in codes.tolist()),
        suffix_vocab=(suffix_before, grown.vocab_sizes[-1]),
        borrowed=tuple(name for name in ("router_checkpoint", SASREC) if name in borrowed),
    )
    return out, report
