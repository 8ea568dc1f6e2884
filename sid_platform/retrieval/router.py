"""The router: a causal transformer over a user's history that writes the next item's Semantic ID.

TIGER reads four tokens per history item and decodes with a full encoder-decoder; on 2 CPU cores that
costs over an hour per epoch. Here each history item is ONE token, the sum of its code embeddings (plus
an optional item-id embedding and a projection of its content vector), so a user's history of n items
costs n positions, not 4n. The decoder is a small per-level head: the state for token l is the user
state plus the embeddings of the tokens already written, so the beam search expands every beam of
every user in one batched matrix product per level.

The same user state also gives a query vector for the ANN channel (cosine against the item vectors the
router learns), trained with a full-catalog softmax so that channel stands on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sid_platform.checkpoint import load_checkpoint, save_checkpoint
from sid_platform.sequences import pad_left
from sid_platform.training import TrainingLog


@dataclass(frozen=True)
class RouterConfig:
    """Defaults are the ``default`` profile: 2 layers, 64-d, 2 heads, full-catalog softmax of a dot-product head.

    The reference design's size (4 layers, 256-d, 8 heads) is the ``full`` profile (longer, or a GPU): its
    layers cost about eight times the FLOPs per token of this size, too slow for 2 cores.
    """

    hidden_dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    max_len: int = 50
    dropout: float = 0.5
    use_codes: bool = True  # sum the item's Semantic-ID code embeddings into its token (False: an ablation)
    use_item_embedding: bool = True  # one learned vector per item beside its code embeddings
    # Training only: the share of items whose id vector is left out of their token at each step, so the model
    # also learns to score an item from its codes and content alone, as it must score a new item (cold start).
    item_id_dropout: float = 0.0
    use_content: bool = True  # project the item's content embedding into its token
    dense_score: str = "dot"  # ANN head: "cosine" (query/key heads, / temperature) or "dot" (state · tied token)
    temperature: float = 0.05  # cosine softmax temperature of the ANN head (unused by "dot")
    num_negatives: int = 0  # 0 = softmax over the full catalog; n > 0: n uniform negatives beside the batch's items
    generative_weight: float = 1.0
    ann_weight: float = 1.0
    lr: float = 2e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 40
    patience: int = 4  # epochs without a better validation Recall@10 before stopping
    max_minutes: float | None = None  # optional wall-clock cap (interactive use); runs are capped by epochs
    beam_size: int = 20  # beams for the generative ranking
    prefix_depth: int = 1  # depth of the prefixes the prefix channel takes
    n_prefixes: int = 10  # P: top prefixes per user for the prefix channel
    seed: int = 0

    @property
    def score_scale(self) -> float:
        """What turns a dense score into the head's softmax logit: 1 / temperature for cosine, 1 for dot."""
        return 1.0 / self.temperature if self.dense_score == "cosine" else 1.0


DENSE_SCORES = ("cosine", "dot")


class SemanticRouter(nn.Module):
    """History tokens → user state → (per-level code logits, ANN query vector)."""

    def __init__(
        self,
        cfg: RouterConfig,
        item_sids: torch.Tensor,
        vocab_sizes: Sequence[int],
        content: torch.Tensor | None = None,
    ) -> None:
        """``item_sids``: [n_items, depth] tokens (codes, then suffix); ``content``: [n_items, c] or None."""
        super().__init__()
        if cfg.dense_score not in DENSE_SCORES:
            raise ValueError(f"dense_score must be one of {', '.join(DENSE_SCORES)}, got {cfg.dense_score!r}")
        if not (cfg.use_codes or cfg.use_item_embedding or (cfg.use_content and content is not None)):
            raise ValueError("an item token needs its codes, its id embedding or its content; all are switched off")
        self.cfg = cfg
        d = cfg.hidden_dim
        self.vocab_sizes = list(vocab_sizes)
        self.register_buffer("item_sids", item_sids.long(), persistent=True)
        n_items = item_sids.shape[0]
        # One table per token position; the code levels' tables serve as input and output embeddings.
        self.token_emb = nn.ModuleList(nn.Embedding(v, d) for v in self.vocab_sizes[:-1])  # codes, not the suffix
        self.item_emb = nn.Embedding(n_items, d) if cfg.use_item_embedding else None
        # Which items have a trained item-id embedding: False for an item added after training (cold start,
        # ``RouterCheckpoint.with_items``), whose token is its code embeddings and content projection alone.
        self.register_buffer("item_id_known", torch.ones(n_items, dtype=torch.bool), persistent=True)
        self._register_load_state_dict_pre_hook(_every_item_known)  # states saved before it: all items trained
        if cfg.use_content and content is not None:
            self.register_buffer("content", content.float(), persistent=True)
            self.content_proj: nn.Module | None = nn.Linear(content.shape[1], d, bias=False)
        else:
            self.content = None
            self.content_proj = None
        self.pad = nn.Parameter(torch.zeros(d), requires_grad=False)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            d,
            cfg.num_heads,
            dim_feedforward=d * 2,
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, d)) for _ in self.vocab_sizes
        )
        # What the decoder reads back after writing a token: unit scale, like the layer-normed user state it
        # is added to (the item-token tables are small at init and would be drowned out).
        self.written = nn.ModuleList(nn.Embedding(v, d) for v in self.vocab_sizes)
        self.out = nn.ModuleList(nn.Linear(d, v) for v in self.vocab_sizes)
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        causal = torch.triu(torch.ones(cfg.max_len, cfg.max_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)
        # Weight of the generative log-probability in the fused score (retrieval/generative.py); chosen on
        # validation users after training and stored with the weights, so serving fuses as evaluation did.
        self.register_buffer("fusion_weight", torch.tensor(0.0), persistent=True)
        for table in self.token_emb:
            nn.init.normal_(table.weight, std=0.02)
        if self.item_emb is not None:
            nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    @property
    def n_items(self) -> int:
        return self.item_sids.shape[0]

    def item_tokens(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """[n, d]: the input token of each given item (all by default): code embeddings + id + content.

        The id embedding counts only for items it was trained for (``item_id_known``); multiplying a trained
        item's by one leaves its token bit for bit what it was. In training, ``item_id_dropout`` of the items
        (drawn per call, so an item's token is the same wherever it appears in the step) go without it.
        """
        items = torch.arange(self.n_items) if items is None else items
        sids = self.item_sids[items]
        levels = len(self.vocab_sizes) - 1 if self.cfg.use_codes else 0  # the suffix carries identity, no meaning
        x = sum(
            (self.token_emb[level](sids[:, level]) for level in range(levels)),
            torch.zeros(len(items), self.cfg.hidden_dim),
        )
        if self.item_emb is not None:
            present = self.item_id_known[items]
            if self.training and self.cfg.item_id_dropout > 0:
                present = present & (torch.rand(len(items)) >= self.cfg.item_id_dropout)
            x = x + self.item_emb(items) * present.unsqueeze(-1)
        if self.content_proj is not None:
            x = x + self.content_proj(self.content[items])
        return x

    def encode(self, seq: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L] left-padded indices (-1 = padding) into ``tokens`` (all items by default) → [B, L, d] states."""
        tokens = self.item_tokens() if tokens is None else tokens
        real = seq >= 0
        x = torch.where(real.unsqueeze(-1), tokens[seq.clamp(min=0)], self.pad)
        length = seq.shape[1]
        x = self.dropout(x + self.pos_emb.weight[-length:]) * real.unsqueeze(-1)
        h = self.encoder(x, mask=self.causal_mask[:length, :length], is_causal=True)
        return self.norm(h)

    @property
    def score_scale(self) -> float:
        """What turns a dense score into the head's softmax logit (``RouterConfig.score_scale``)."""
        return self.cfg.score_scale

    @property
    def fuses_log_probs(self) -> bool:
        """Whether the fused score reads the exact generative log-probabilities: a fusion weight of 0 (chosen on
        validation) makes it the dense score, bit for bit, and computing them would be wasted."""
        return bool(float(self.fusion_weight))

    def item_keys(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """[n_items, d] item vectors (the FAISS index holds them): normalized keys, or the tied tokens for dot."""
        tokens = self.item_tokens() if tokens is None else tokens
        return tokens if self.cfg.dense_score == "dot" else nn.functional.normalize(self.key(tokens), dim=-1)

    def user_queries(self, states: torch.Tensor) -> torch.Tensor:
        """[..., d] states → query vectors in the item vectors' space (normalized for cosine, the state for dot)."""
        return states if self.cfg.dense_score == "dot" else nn.functional.normalize(self.query(states), dim=-1)

    def level_logits(self, states: torch.Tensor, level: int) -> torch.Tensor:
        """[..., d] decoder states → [..., vocab(level)] logits of token ``level``."""
        return self.out[level](self.decoder[level](states))

    def next_state(self, states: torch.Tensor, level: int, tokens: torch.Tensor) -> torch.Tensor:
        """The decoder state for token ``level + 1`` after writing ``tokens`` at ``level``."""
        return states + self.written[level](tokens)

    def generative_loss(self, states: torch.Tensor, target_items: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of every token of the target items' IDs, summed over levels."""
        sids = self.item_sids[target_items]
        loss = states.new_zeros(())
        for level in range(len(self.vocab_sizes)):
            loss = loss + nn.functional.cross_entropy(self.level_logits(states, level), sids[:, level])
            states = self.next_state(states, level, sids[:, level])
        return loss

    def ann_loss(self, states: torch.Tensor, targets: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Softmax over the dense score against ``keys`` (rows = the candidate items; targets index rows)."""
        logits = self.user_queries(states) @ keys.T * self.score_scale
        return nn.functional.cross_entropy(logits, targets)

    @torch.no_grad()
    def user_states(
        self, histories: Sequence[np.ndarray], batch_size: int = 512, tokens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[users, d] last-position state of each history (eval mode); ``tokens``: ``item_tokens()`` if computed.

        Users are batched by EXACT (truncated) history length: no history is padded, so a user's state is
        the same whoever else is in the request (padding positions are attended to and would shift it).
        """
        was_training = self.training
        self.eval()
        tokens = self.item_tokens() if tokens is None else tokens
        lengths = np.asarray([min(len(h), self.cfg.max_len) for h in histories], dtype=np.int64)
        out = torch.zeros(len(histories), self.cfg.hidden_dim)
        for length in np.unique(lengths).tolist():
            same = np.flatnonzero(lengths == length)
            for start in range(0, len(same), batch_size):
                rows = same[start : start + batch_size]
                seq = torch.from_numpy(pad_left([histories[r] for r in rows], max(length, 1), pad=-1))
                out[torch.from_numpy(rows)] = self.encode(seq, tokens)[:, -1]
        self.train(was_training)
        return out

    @torch.no_grad()
    def cosine_scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[users, n_items] cosine between each user's query and every item vector (a harness scorer)."""
        was_training = self.training
        self.eval()
        scores = (self.user_queries(self.user_states(histories)) @ self.item_keys().T).numpy()
        self.train(was_training)
        return scores


def _every_item_known(state: dict, prefix: str, *args: object) -> None:
    """A state from before ``item_id_known`` existed (a checkpoint, a resume file): every item in it was trained."""
    if f"{prefix}item_sids" in state and f"{prefix}item_id_known" not in state:
        state[f"{prefix}item_id_known"] = torch.ones(len(state[f"{prefix}item_sids"]), dtype=torch.bool)


@dataclass
class RouterCheckpoint:
    """What ``router_checkpoint`` stores: config, the codebook version and item vocabulary it was trained
    against (its Semantic IDs and content vectors are among the weights), the weights and the log."""

    KIND: ClassVar[str] = "semantic_router"

    config: RouterConfig
    tokenizer_version: str  # the codebooks whose Semantic IDs the router writes
    item_ids: list[str]  # item index i is item_ids[i]
    vocab_sizes: list[int]  # per token position: codes of each level, then the suffix
    weights: dict[str, torch.Tensor]
    log: TrainingLog | None = None

    @classmethod
    def of(
        cls, model: SemanticRouter, item_ids: Sequence[str], tokenizer_version: str, log: TrainingLog | None = None
    ) -> RouterCheckpoint:
        weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        return cls(model.cfg, tokenizer_version, list(item_ids), list(model.vocab_sizes), weights, log)

    def model(self) -> SemanticRouter:
        """The trained router, in eval mode."""
        content = self.weights.get("content")  # stored only when the router projects content vectors
        model = SemanticRouter(self.config, self.weights["item_sids"], self.vocab_sizes, content)
        model.load_state_dict(self.weights)
        return model.eval()

    def with_items(
        self,
        item_ids: Sequence[str],
        sids: np.ndarray,
        content: np.ndarray | None,
        id_rows: np.ndarray | None = None,
    ) -> RouterCheckpoint:
        """This router over the catalog plus new items, without retraining (cold start).

        The new items are appended (item indices of the known ones do not move) with their Semantic IDs
        (``sids``: [n, depth], codes then suffix, from the same codebooks) and content vectors. Their item-id
        embedding is ``id_rows`` when given (e.g. borrowed from the items under their prefix), and counts then;
        without it they get none (a zero row, ``item_id_known`` False), so their token is what the codes and the
        content say. A suffix beyond the decoder's suffix vocabulary grows it: the new output rows are the
        mean of the trained ones (the suffix only tells colliding items apart), so no trained row changes.
        """
        item_ids, sids = list(item_ids), np.asarray(sids, dtype=np.int64).reshape(len(item_ids), -1)
        clash = set(item_ids) & set(self.item_ids)
        if clash or len(set(item_ids)) != len(item_ids):
            raise ValueError(
                f"new items must be unique and unknown to the router; known or repeated: {sorted(clash)[:5]}"
            )
        depth = len(self.vocab_sizes)
        if sids.shape[1] != depth or (sids[:, :-1] >= np.asarray(self.vocab_sizes[:-1])).any() or (sids < 0).any():
            raise ValueError(
                f"new Semantic IDs must be [n, {depth}] tokens within the codebooks {self.vocab_sizes[:-1]}"
            )
        weights, n = dict(self.weights), len(item_ids)
        weights["item_sids"] = torch.cat([weights["item_sids"], torch.from_numpy(sids)])
        known = weights.get("item_id_known", torch.ones(len(self.item_ids), dtype=torch.bool))
        borrowed = id_rows is not None and "item_emb.weight" in weights
        weights["item_id_known"] = torch.cat([known, torch.full((n,), borrowed, dtype=torch.bool)])
        if "item_emb.weight" in weights:
            table = weights["item_emb.weight"]
            rows = table.new_zeros(n, table.shape[1])
            if id_rows is not None:
                if np.shape(id_rows) != tuple(rows.shape):
                    raise ValueError(f"id_rows must be [{n}, {table.shape[1]}], got {np.shape(id_rows)}")
                rows = torch.from_numpy(np.asarray(id_rows, dtype=np.float32)).to(table.dtype)
            weights["item_emb.weight"] = torch.cat([table, rows])
        if "content" in weights:
            if content is None or len(content) != n:
                raise ValueError("this router projects content vectors: give one per new item")
            weights["content"] = torch.cat([weights["content"], torch.from_numpy(np.asarray(content, np.float32))])
        vocab_sizes = list(self.vocab_sizes)
        suffixes = int(sids[:, -1].max()) + 1 if n else 0
        if suffixes > vocab_sizes[-1]:
            last, extra = depth - 1, suffixes - vocab_sizes[-1]
            for name in (f"out.{last}.weight", f"out.{last}.bias", f"written.{last}.weight"):
                rows = weights[name]
                weights[name] = torch.cat([rows, rows.mean(0, keepdim=True).expand(extra, *rows.shape[1:])])
            vocab_sizes[-1] = suffixes
        return RouterCheckpoint(
            self.config, self.tokenizer_version, [*self.item_ids, *item_ids], vocab_sizes, weights, self.log
        )

    def save(self, path: str | Path) -> Path:
        meta = {
            "config": asdict(self.config),
            "tokenizer_version": self.tokenizer_version,
            "item_ids": self.item_ids,
            "vocab_sizes": self.vocab_sizes,
            "log": self.log.as_dict() if self.log is not None else None,
        }
        return save_checkpoint(path, self.KIND, self.weights, meta)

    @classmethod
    def load(cls, path: str | Path) -> RouterCheckpoint:
        weights, meta = load_checkpoint(path, cls.KIND)
        log = TrainingLog.from_dict(meta["log"]) if meta["log"] is not None else None
        config = RouterConfig(**meta["config"])
        return cls(config, meta["tokenizer_version"], meta["item_ids"], meta["vocab_sizes"], weights, log)
