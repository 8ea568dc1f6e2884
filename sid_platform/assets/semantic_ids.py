"""Semantic IDs: ``item_embeddings`` → ``codebooks`` → ``usid_table`` → ``prefix_index``, with intrinsic checks."""

import polars as pl
from dagster import AssetCheckResult, AssetExecutionContext, AssetIn, Config, MetadataValue, Output, asset, asset_check

from sid_platform.assets.reporting import EpochReport, training_report
from sid_platform.data.split import UserSequences
from sid_platform.embed.cache import EmbeddingCache
from sid_platform.embed.pipeline import EmbeddingSpec, ItemEmbeddings, embed_items
from sid_platform.evaluation.plots import code_usage_plot
from sid_platform.evaluation.report import markdown_table
from sid_platform.policy import POLICY
from sid_platform.resources import MlflowResource, SideFileStorage, config_class
from sid_platform.semantic_ids import (
    CodebooksCheckpoint,
    SemanticTokenizer,
    TokenizerSpec,
    UsidLookup,
    build_prefix_index,
    build_usid_table,
    code_label_audit,
    intrinsic_report,
    perplexity_per_level,
    sid_stability,
    utilization_per_level,
)
from sid_platform.storage import frame_bytes, read_parquet_blob

GROUP = "semantic_ids"
PUBLISHED_USID_TABLE = "semantic_ids/usid_table_latest.parquet"  # the previous table, for ID stability


class ItemEmbeddingsConfig(config_class("ItemEmbeddingsFields", EmbeddingSpec)):  # type: ignore[misc]
    """Encoders and their knobs; fields, defaults and descriptions come from ``EmbeddingSpec``."""


@asset(group_name=GROUP, description="One vector per catalog item (content, collaborative, or both fused).")
def item_embeddings(
    context: AssetExecutionContext,
    config: ItemEmbeddingsConfig,
    storage: SideFileStorage,
    item_catalog: pl.DataFrame,
    user_sequences: UserSequences,
) -> Output[ItemEmbeddings]:
    train = user_sequences.train
    spec = EmbeddingSpec(
        **{**config.model_dump(), "encoders": tuple(config.encoders), "weights": tuple(config.weights)}
    )
    cache = EmbeddingCache(storage.store(), "embedding_cache/")  # only new or changed items are embedded
    result = embed_items(item_catalog, train, spec, cache, context.log.info)
    stats = {
        f"{name}_{key}": round(value, 1) if isinstance(value, float) else value
        for name, stat in result.stats.items()
        for key, value in vars(stat).items()
    }
    return Output(
        result,
        metadata={
            "encoders": ", ".join(result.parts),
            "items": len(result.item_ids),
            "dim": int(result.vectors.shape[1]),
            "version": result.version,
            **stats,
        },
    )


class CodebooksConfig(config_class("CodebooksFields", TokenizerSpec)):  # type: ignore[misc]
    """Which tokenizer, and its knobs; fields and defaults come from ``TokenizerSpec`` (TIGER's sizes, 4 x 256;
    an unset codebook_size follows the catalog)."""

    def build(self, n_items: int) -> SemanticTokenizer:
        return self.core().resolved(n_items).build()


@asset(group_name=GROUP, description="The trained Semantic-ID tokenizer (RQ-VAE or RQ-KMeans) as a versioned state.")
def codebooks(
    context: AssetExecutionContext,
    config: CodebooksConfig,
    mlflow: MlflowResource,
    item_embeddings: ItemEmbeddings,
    item_catalog: pl.DataFrame,
) -> Output[CodebooksCheckpoint]:
    tokenizer = config.build(len(item_embeddings.item_ids))
    log = tokenizer.fit(item_embeddings.vectors, item_catalog["categories"].to_list(), context.log.info)
    codes = tokenizer.encode(item_embeddings.vectors)
    checkpoint = CodebooksCheckpoint.of(tokenizer, item_embeddings.version, log)
    utilization = utilization_per_level(codes, tokenizer.codebook_size)
    perplexity = perplexity_per_level(codes, tokenizer.codebook_size)
    last = log.epochs[-1] if log.epochs else {}
    figures = {
        "train_seconds": round(log.seconds, 1),
        **{f"utilization_level_{i + 1}": round(u, 4) for i, u in enumerate(utilization)},
        **{f"perplexity_level_{i + 1}": round(p, 1) for i, p in enumerate(perplexity)},
        **({"recon_mse": round(float(last["recon_mse"]), 4)} if "recon_mse" in last else {}),
    }
    report = EpochReport(curves=tuple(key for key in last if key not in ("epoch", "seconds")))
    params = {**config.model_dump(), "embeddings_version": item_embeddings.version, "version": checkpoint.version}
    params["codebook_size"] = tokenizer.codebook_size  # resolved from the catalog when the config leaves it unset
    metadata = training_report(
        context,
        mlflow,
        log.epochs,
        report,
        params=params,
        figures=figures,
        plots={"code_usage": code_usage_plot(codes, tokenizer.codebook_size)},
    )
    versions = {"version": checkpoint.version, "embeddings_version": item_embeddings.version}
    size = {"codebook_size": tokenizer.codebook_size, "codebook_size_auto": config.codebook_size is None}
    return Output(checkpoint, metadata={"tokenizer": config.tokenizer, **versions, **size, **metadata})


@asset(group_name=GROUP, description="item → (c1 … cL, suffix): every item's Semantic ID, unique thanks to the suffix.")
def usid_table(
    context: AssetExecutionContext,
    storage: SideFileStorage,
    codebooks: CodebooksCheckpoint,
    item_embeddings: ItemEmbeddings,
    item_catalog: pl.DataFrame,
) -> Output[pl.DataFrame]:
    tokenizer = codebooks.tokenizer()
    codes = tokenizer.encode(item_embeddings.vectors)
    table = build_usid_table(item_embeddings.item_ids, codes, codebooks.version)
    report = intrinsic_report(
        codes, tokenizer.codebook_size, item_embeddings.vectors, item_catalog["categories"].to_list()
    )
    store = storage.store()
    previous = read_parquet_blob(store, PUBLISHED_USID_TABLE)  # the last table, to measure how IDs moved
    stability = sid_stability(previous, table) if previous is not None else None
    audit = code_label_audit(codes, item_catalog["categories"].to_list(), item_embeddings.item_ids)
    audit_path = store.write("semantic_ids/code_label_audit.csv", frame_bytes(audit, "csv"))
    store.write(PUBLISHED_USID_TABLE, frame_bytes(table))
    metadata = {
        "items": table.height,
        "tokenizer_version": codebooks.version,
        "collision_rate_before_suffix": round(report["collision_rate"], 4),
        "max_suffix": int(table["suffix"].max() or 0),
        "code_label_audit": MetadataValue.path(audit_path),
        "code_label_audit_flagged": audit.height,
    }
    for key in ("similarity_depth_spearman", "taxonomy_alignment", "taxonomy_alignment_chance"):
        if key in report:
            metadata[key] = round(float(report[key]), 4)
    if stability is not None:
        metadata.update({f"stability_{k}": v for k, v in stability.items()})
    return Output(table, metadata=metadata)


@asset(group_name=GROUP, description="Every code prefix (length 1 … L) → the items under it.")
def prefix_index(usid_table: pl.DataFrame) -> Output[pl.DataFrame]:
    index = build_prefix_index(usid_table)
    sizes = index.sizes_per_level()
    rows = [(level, s["n_prefixes"], round(s["mean_items"], 2), s["max_items"]) for level, s in sorted(sizes.items())]
    return Output(
        index.to_frame(),
        metadata={"sizes": MetadataValue.md(markdown_table(["level", "prefixes", "mean items", "max items"], rows))},
    )


class UtilizationCheckConfig(Config):
    min_utilization: float = POLICY.min_codebook_utilization


@asset_check(
    asset="codebooks",
    additional_ins={"item_embeddings": AssetIn()},
    blocking=True,
    description=f"Every level of the codebook uses at least {POLICY.min_codebook_utilization:.0%} of its codes.",
)
def codebook_utilization(
    config: UtilizationCheckConfig, codebooks: CodebooksCheckpoint, item_embeddings: ItemEmbeddings
) -> AssetCheckResult:
    tokenizer = codebooks.tokenizer()
    utilization = utilization_per_level(tokenizer.encode(item_embeddings.vectors), tokenizer.codebook_size)
    low = [i + 1 for i, u in enumerate(utilization) if u < config.min_utilization]
    return AssetCheckResult(
        passed=not low,
        description=f"levels {low} use fewer than {config.min_utilization:.0%} of their codes" if low else None,
        metadata={f"utilization_level_{i + 1}": round(u, 4) for i, u in enumerate(utilization)},
    )


@asset_check(
    asset="usid_table",
    blocking=True,
    description="Full Semantic IDs (codes + suffix) are unique and map back to their items.",
)
def usid_unique(usid_table: pl.DataFrame) -> AssetCheckResult:
    duplicates = usid_table.height - usid_table["sid"].n_unique()
    mismatched = 0
    if duplicates == 0:
        lookup = UsidLookup(usid_table)
        mismatched = sum(lookup.item_of(lookup.sid_of(item)) != item for item in usid_table["item_id"].to_list())
    return AssetCheckResult(
        passed=duplicates == 0 and mismatched == 0,
        description=f"{duplicates} duplicate Semantic IDs, {mismatched} items that do not map back"
        if duplicates or mismatched
        else None,
        metadata={"duplicate_sids": duplicates, "round_trip_mismatches": mismatched},
    )
