"""Retrieval for the evaluated users, run once per materialization and stored: the ``candidates`` asset.

The reranker (its training pairs and its study) and the evaluation read the same retrieval of the same
users; running ``retrieve`` once and storing its output saves one full retrieval pass, about a minute on
Beauty. ``retrieve`` returns per-user lists (the union, its base scores, each channel's items) and torch
tensors; stored as they are, a Beauty split would be about a hundred thousand small arrays and the
prefix channel's items twice over. Each split is stored instead as a few flat numpy arrays: every user's
candidates one after another (``offsets`` marks where each user's start), one channel flag per candidate
(prefix, ANN or both) in place of the two channel lists, and the base scores aligned with the candidates.
``retrieval()`` gives back a ``Retrieval`` whose candidates, base scores and rankings are those
``retrieve`` returned, in the same order, so the figures computed from it do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sid_platform.data.split import EvalCases, UserSequences
from sid_platform.progress import LogLine
from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.candidates import ChannelReport
from sid_platform.retrieval.pipeline import Retrieval, retrieve
from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.trie import SidTrie

PREFIX, ANN = np.uint8(1), np.uint8(2)  # a candidate's channel flags
SPLITS = ("valid", "test")


def _flat(rows: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate([np.asarray(r, dtype=dtype) for r in rows]) if len(rows) else np.zeros(0, dtype=dtype)


def _rows(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[start:end] for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]


@dataclass(frozen=True)
class StoredRetrieval:
    """One split's retrieval output as flat arrays, with the users it was run for and its channel report."""

    user_ids: list[str]
    targets: np.ndarray  # [users] the targets the channel report was measured on
    generative: np.ndarray  # [users, k] beam-search ranking
    hybrid_cosine: np.ndarray  # [users, k] the union ranked by cosine
    fused: np.ndarray  # [users, k] the union ranked by the fused score
    items: np.ndarray  # int32, every user's candidates (the union) in ``retrieve``'s order, user after user
    offsets: np.ndarray  # int64 [users + 1]: user u's candidates are items[offsets[u]:offsets[u + 1]]
    channels: np.ndarray  # uint8 aligned with ``items``: PREFIX | ANN (0: found by the beams alone)
    base_scores: np.ndarray  # float32 aligned with ``items``: cosine of query and item vector
    log_probs: np.ndarray  # float32 aligned with ``items``: exact generative log p(ID); empty when skipped (w = 0)
    fused_scores: np.ndarray  # float32 aligned with ``items``: the fused score the ``fused`` ranking sorts by
    queries: np.ndarray  # float32 [users, d] normalized query vectors
    report: ChannelReport  # coverage and candidates per user of each channel, on ``targets``
    seconds: dict[str, float] = field(default_factory=dict)  # per retrieval stage, for all these users

    @classmethod
    def pack(cls, found: Retrieval, cases: EvalCases) -> StoredRetrieval:
        """Flatten ``retrieve``'s output for ``cases`` (the users it was run for) and measure its channels."""
        report = ChannelReport.measure(found.prefix, found.ann, found.candidates, cases.targets)
        flags = [
            np.isin(union, prefix).astype(np.uint8) * PREFIX | np.isin(union, ann).astype(np.uint8) * ANN
            for union, prefix, ann in zip(found.candidates, found.prefix, found.ann, strict=True)
        ]
        lengths = np.asarray([len(c) for c in found.candidates], dtype=np.int64)
        items = _flat(found.candidates, np.int64)
        if items.size and items.max() > np.iinfo(np.int32).max:
            raise ValueError("item indices beyond int32; store the candidates as int64")
        return cls(
            user_ids=list(cases.user_ids),
            targets=np.asarray(cases.targets, dtype=np.int64),
            generative=found.generative,
            hybrid_cosine=found.hybrid_cosine,
            fused=found.fused,
            items=items.astype(np.int32),
            offsets=np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths)]),
            channels=_flat(flags, np.uint8),
            base_scores=_flat(found.base_scores, np.float32),
            log_probs=_flat(found.log_probs, np.float32) if found.log_probs is not None else np.zeros(0, np.float32),
            fused_scores=_flat(found.fused_scores, np.float32),
            queries=found.queries.numpy().astype(np.float32, copy=False),
            report=report,
            seconds=dict(found.seconds),
        )

    def __len__(self) -> int:
        return len(self.user_ids)

    def retrieval(self, keys: np.ndarray) -> Retrieval:
        """The ``Retrieval`` again: candidates as int64, as ``retrieve`` gives them; the channel lists (read by
        no ranking, kept as int32) hold the same items as ``retrieve``'s, in candidate order."""
        narrow, flags = _rows(self.items, self.offsets), _rows(self.channels, self.offsets)
        return Retrieval(
            generative=self.generative,
            hybrid_cosine=self.hybrid_cosine,
            fused=self.fused,
            prefix=[union[(f & PREFIX) > 0] for union, f in zip(narrow, flags, strict=True)],
            ann=[union[(f & ANN) > 0] for union, f in zip(narrow, flags, strict=True)],
            candidates=_rows(self.items.astype(np.int64), self.offsets),
            base_scores=_rows(self.base_scores, self.offsets),
            log_probs=_rows(self.log_probs, self.offsets) if len(self.log_probs) == len(self.items) else None,
            fused_scores=_rows(self.fused_scores, self.offsets),
            queries=torch.from_numpy(self.queries),
            keys=torch.from_numpy(keys),
            seconds=dict(self.seconds),
        )


@dataclass(frozen=True)
class Candidates:
    """The validation and test users' retrieval, and what it was run with (the ``candidates`` asset)."""

    valid: StoredRetrieval
    test: StoredRetrieval
    keys: np.ndarray  # float32 [n_items, d] the item vectors the base scores were computed against
    item_ids: list[str]  # the router's vocabulary: what the item indices refer to
    tokenizer_version: str  # the codebook version the router was trained against
    k: int  # depth of the rankings
    exclude_history: bool  # whether seen items were dropped from the rankings
    prefix_channel: dict[str, int]  # {"depth", "prefixes"}
    ann_channel: dict[str, str | int]  # {"kind", "top_n"}

    def split(self, name: str) -> StoredRetrieval:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; candidates hold {', '.join(SPLITS)}")
        return self.valid if name == "valid" else self.test

    def retrieval(self, name: str, cases: EvalCases) -> Retrieval:
        """The split's ``Retrieval``, after checking it was run for exactly these users and targets."""
        stored = self.split(name)
        if stored.user_ids != list(cases.user_ids) or not np.array_equal(stored.targets, cases.targets):
            raise ValueError(f"candidates were retrieved for other {name} users; rematerialize candidates")
        return stored.retrieval(self.keys)

    def check(self, k: int, exclude_history: bool) -> None:
        """Refuse candidates retrieved under another protocol (ranking depth, history exclusion)."""
        if self.k != k or self.exclude_history != exclude_history:
            raise ValueError(
                f"candidates were retrieved with k={self.k}, exclude_history={self.exclude_history}; the protocol "
                f"asks for k={k}, exclude_history={exclude_history}: rematerialize candidates"
            )


def retrieve_users(
    router: SemanticRouter,
    trie: SidTrie,
    index: AnnIndex,
    sequences: UserSequences,
    k: int,
    exclude_history: bool,
    tokenizer_version: str,
    on_progress: LogLine | None = None,
) -> Candidates:
    """``retrieve`` for the validation and the test users, each once, packed for storage; ``on_progress``
    receives each split's progress lines.

    The exact generative log-probabilities of the candidates (most of retrieval's cost) are computed only when the
    router's fusion weight, chosen on validation in training, is not 0: as serving does, and with the same lists.
    """
    stored = {}
    for name, cases in (("valid", sequences.valid), ("test", sequences.test)):
        phase = f"candidates ({name} users)"
        found = retrieve(
            router,
            trie,
            index,
            cases.histories,
            k,
            index.top_n,
            exclude_history,
            on_progress,
            phase,
            log_probs=router.fuses_log_probs,
        )
        stored[name] = StoredRetrieval.pack(found, cases)  # packed at once: one split's lists in memory at a time
    return Candidates(
        valid=stored["valid"],
        test=stored["test"],
        keys=found.keys.numpy().astype(np.float32, copy=False),
        item_ids=list(sequences.vocab.item_ids),
        tokenizer_version=tokenizer_version,
        k=k,
        exclude_history=exclude_history,
        prefix_channel={"depth": router.cfg.prefix_depth, "prefixes": router.cfg.n_prefixes},
        ann_channel={"kind": index.kind, "top_n": index.top_n},
    )
