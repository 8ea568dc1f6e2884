"""Leave-one-out split in time order, and the per-user sequences every model and metric reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

SPLITS = ("train", "valid", "test")


def leave_one_out(interactions: pl.DataFrame) -> pl.DataFrame:
    """Per user: last interaction ``test``, the one before ``valid``, the rest ``train``.

    Order is timestamp, then sequence position, then item id, so ties are broken the same way on
    every run. Users with fewer than three interactions cannot be evaluated; all their rows are
    ``train`` (they still teach the models). Adds ``seq_index`` (0-based order within the user).
    """
    ordered = interactions.sort(["user_id", "timestamp", "position", "item_id"], nulls_last=False)
    ordered = ordered.with_columns(pl.int_range(pl.len()).over("user_id").alias("seq_index"))
    n = pl.len().over("user_id")
    from_end = n - 1 - pl.col("seq_index")
    split = (
        pl.when(n < 3)
        .then(pl.lit("train"))
        .when(from_end == 0)
        .then(pl.lit("test"))
        .when(from_end == 1)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("train"))
    )
    return ordered.with_columns(split.alias("split"))


@dataclass(frozen=True)
class ItemVocab:
    """Item ids ↔ contiguous indices 0..N-1, in catalog order. Checkpoints store it to stay self-describing."""

    item_ids: list[str]

    @classmethod
    def from_catalog(cls, catalog: pl.DataFrame) -> ItemVocab:
        return cls(catalog["item_id"].to_list())

    def __len__(self) -> int:
        return len(self.item_ids)

    def index_of(self, ids: pl.Series) -> np.ndarray:
        mapping = pl.DataFrame({"item_id": self.item_ids, "_idx": np.arange(len(self.item_ids), dtype=np.int64)})
        joined = pl.DataFrame({"item_id": ids}).join(mapping, on="item_id", how="left", maintain_order="left")
        if joined["_idx"].null_count():
            unknown = joined.filter(pl.col("_idx").is_null())["item_id"].head(5).to_list()
            raise KeyError(f"{joined['_idx'].null_count()} item id(s) not in the catalog, e.g. {unknown}")
        return joined["_idx"].to_numpy()


@dataclass(frozen=True)
class EvalCases:
    """For each evaluated user: the history the model sees (item indices, oldest first) and the target."""

    user_ids: list[str]
    histories: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class UserSequences:
    """Training sequences and the validation/test cases derived from one split frame, with the vocabulary
    their indices refer to (so one stored object is all a model needs to train or be evaluated)."""

    train: list[np.ndarray]
    valid: EvalCases
    test: EvalCases
    vocab: ItemVocab

    @classmethod
    def from_splits(cls, splits: pl.DataFrame, vocab: ItemVocab) -> UserSequences:
        frame = splits.sort(["user_id", "seq_index"])
        frame = frame.with_columns(pl.Series("idx", vocab.index_of(frame["item_id"])))
        per_user = frame.group_by("user_id", maintain_order=True).agg(pl.col("idx"), pl.col("split"))
        train, valid, test = [], ([], [], []), ([], [], [])
        for user, idx, split in per_user.iter_rows():
            items = np.asarray(idx, dtype=np.int64)
            is_train = np.asarray(split) == "train"
            train.append(items[is_train])
            if len(items) >= 3 and not is_train[-1]:
                valid[0].append(user)
                valid[1].append(items[:-2])
                valid[2].append(items[-2])
                test[0].append(user)
                test[1].append(items[:-1])
                test[2].append(items[-1])
        return cls(
            train=train,
            valid=EvalCases(valid[0], valid[1], np.asarray(valid[2], dtype=np.int64)),
            test=EvalCases(test[0], test[1], np.asarray(test[2], dtype=np.int64)),
            vocab=vocab,
        )
