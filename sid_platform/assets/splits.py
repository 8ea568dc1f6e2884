"""``data_splits``: leave-one-out per user in time order; ``user_sequences``: the same as item indices, built once."""

import polars as pl
from dagster import AssetExecutionContext, Output, asset

from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out


@asset(group_name="ingest", description="Interactions with a `split` column (train / valid / test) and `seq_index`.")
def data_splits(context: AssetExecutionContext, raw_interactions: pl.DataFrame) -> Output[pl.DataFrame]:
    splits = leave_one_out(raw_interactions)
    counts = dict(splits.group_by("split").len().iter_rows())
    lengths = splits.group_by("user_id").len()["len"]
    return Output(
        splits,
        metadata={
            "train": counts.get("train", 0),
            "valid": counts.get("valid", 0),
            "test": counts.get("test", 0),
            "users": lengths.len(),
            "evaluated_users": counts.get("test", 0),
            "mean_sequence_length": float(lengths.mean() or 0.0),
            "median_sequence_length": float(lengths.median() or 0.0),
        },
    )


@asset(
    group_name="ingest",
    description="Every user's sequence as catalog indices (training sequences, validation and test cases) and "
    "the item vocabulary: what every model trains and is evaluated on, built once.",
)
def user_sequences(data_splits: pl.DataFrame, item_catalog: pl.DataFrame) -> Output[UserSequences]:
    sequences = UserSequences.from_splits(data_splits, ItemVocab.from_catalog(item_catalog))
    return Output(
        sequences,
        metadata={
            "items": len(sequences.vocab),
            "training_sequences": len(sequences.train),
            "valid_users": len(sequences.valid),
            "test_users": len(sequences.test),
        },
    )
