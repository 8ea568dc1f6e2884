"""``data_splits``: leave-one-out per user in time order."""

import polars as pl
from dagster import AssetExecutionContext, Output, asset

from sid_platform.data.split import leave_one_out


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
