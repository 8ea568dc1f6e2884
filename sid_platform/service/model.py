"""One loaded champion as the service answers with it: the ranking, the lookups, search, and the per-user cache.

Why one object: a reload builds a whole new ``ServiceModel`` (bundle, lookups written, search encoders, the
known users' top-K precomputed) before the service points at it, and a request holds the one it started with,
so nothing a request reads changes under it and a swap is a single reference assignment.

The ranking is ``ServedModel.answer`` from ``sid_platform.serving``, whatever it ranks with; this module adds
what an HTTP client needs around it: Semantic IDs through the ``LookupStore``, titles, the channel and scores
(``explain``), and the cache. The cache holds the top ``cache_k`` of every known user's stored history, computed
at load; a request for a known user whose history equals the stored one (or that sends no history) is answered
from it without the model, and one whose history differs drops that user's entry and is ranked afresh (and
cached again when it asked for at least ``cache_k`` items). For k up to the router's beam size a top-k list is
the head of a longer one, so a cached top-``cache_k`` answers every smaller k.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sid_platform.registry.bundle import load_bundle
from sid_platform.semantic_ids.usid import table_levels
from sid_platform.service.components import ITEM_TITLES, USER_HISTORIES
from sid_platform.service.explain import POPULARITY, Why, explain
from sid_platform.service.lookup import LookupStore, sync_usid_table
from sid_platform.service.search import SearchUnavailable, TextSearch
from sid_platform.serving import ServedModel
from sid_platform.threads import available_cores

_LOG = logging.getLogger(__name__)
DEFAULT_CACHE_K = 10
PRECOMPUTE_BATCH = 256  # users ranked per call while precomputing


class UnknownUser(LookupError):
    """A ``user_id`` without a stored history, sent without a history of its own."""


class UnknownItem(LookupError):
    """An item id outside the champion's catalog."""


@dataclass(frozen=True)
class Answer:
    """One history's recommendation: items (dicts ready for JSON), the fallback used, the unknown ids."""

    items: list[dict[str, Any]]
    fallback: str | None
    unknown_items: list[str]


@dataclass(frozen=True)
class CacheEntry:
    history: tuple[str, ...]
    answer: Answer


class TopKCache:
    """Known user → the answer to their stored history (top ``k``); thread-safe."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._entries: dict[str, CacheEntry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user_id: str) -> CacheEntry | None:
        return self._entries.get(user_id)

    def put(self, user_id: str, history: Sequence[str], answer: Answer) -> None:
        trimmed = Answer(answer.items[: self.k], answer.fallback, answer.unknown_items)
        with self._lock:
            self._entries[user_id] = CacheEntry(tuple(history), trimmed)

    def invalidate(self, user_id: str) -> None:
        with self._lock:
            self._entries.pop(user_id, None)


@dataclass
class ServiceModel:
    version: str
    serving: str
    served: ServedModel
    components: Mapping[str, Any]
    lookups: LookupStore
    namespace: str
    levels: int
    titles: dict[str, str | None]
    histories: dict[str, tuple[str, ...]]
    cache: TopKCache
    search: TextSearch | None
    search_unavailable: str | None
    loaded_at: float = field(default_factory=time.time)
    # Model calls in flight at once: one per core (each runs torch on one thread, ``threads.use_threads``). More
    # would only contend for the cores and the GIL, and throughput falls as clients are added; a request beyond
    # the bound waits for a slot instead. Cache hits never take one.
    slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(available_cores()))
    keep: Any = None  # what must live as long as the model (its download folder)

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        version: str,
        lookups: LookupStore,
        *,
        cache_k: int = DEFAULT_CACHE_K,
        precompute_users: int | None = None,
        serving: str | None = None,
        keep: Any = None,
    ) -> ServiceModel:
        """Everything a request needs, ready: hash-checked components, lookups written, known users ranked.

        ``serving`` overrides the ranking the evaluation chose (``load_bundle``): a canary or a comparison.
        """
        started = time.perf_counter()
        bundle = load_bundle(model_dir, serving)  # no pickle; every component checked against its pinned SHA-256
        components, config = bundle.components, bundle.config
        table = components["usid_table"]
        namespace = sync_usid_table(lookups, table)
        try:
            embedding_config = config.get("resolved_run_config", {}).get("ops", {}).get("item_embeddings", {})
            search, unavailable = TextSearch.of(components, embedding_config.get("config", {})), None
        except SearchUnavailable as reason:
            search, unavailable = None, str(reason)
        model = cls(
            version=str(version),
            serving=bundle.serving,
            served=bundle.served,
            components=components,
            lookups=lookups,
            namespace=namespace,
            levels=table_levels(table),
            titles=_titles(components.get(ITEM_TITLES)),
            histories=_histories(components.get(USER_HISTORIES)),
            cache=TopKCache(cache_k),
            search=search,
            search_unavailable=unavailable,
            keep=keep,
        )
        model.precompute(precompute_users)
        _LOG.info(
            "loaded v%s (%s): %d items, %d known users (%d precomputed), search %s, in %.1fs",
            version,
            model.serving,
            len(model.served.catalog),
            len(model.histories),
            len(model.cache),
            "on" if search else f"off ({unavailable})",
            time.perf_counter() - started,
        )
        return model

    def precompute(self, limit: int | None = None) -> None:
        """The top ``cache_k`` of every known user's stored history (the first ``limit`` users by id)."""
        users = sorted(self.histories)[: limit if limit is not None else None]
        # Batches of equal-length histories: a model that pads a batch to its longest history then ranks each
        # user as it would alone, so a cached answer is the answer the user would get from the model.
        users.sort(key=lambda user: len(self.histories[user]))
        batches: list[list[str]] = []
        for user in users:
            if (
                batches
                and len(batches[-1]) < PRECOMPUTE_BATCH
                and len(self.histories[batches[-1][0]]) == len(self.histories[user])
            ):
                batches[-1].append(user)
            else:
                batches.append([user])
        for chunk in batches:
            answers = self.rank([list(self.histories[user]) for user in chunk], self.cache.k)
            for user, answer in zip(chunk, answers, strict=True):
                self.cache.put(user, self.histories[user], answer)

    def rank(self, histories: list[list[str]], k: int, with_reasons: bool = True) -> list[Answer]:
        """The served model's answer to each history, with SIDs, titles, channels and scores."""
        with self.slots:
            frame, found = self.served.answer_traced(histories, k)
        ranked_items = [list(items) for items in frame["items"]]
        fallbacks = frame["fallback"].tolist()
        reasons: dict[int, list[Why]] = {}
        rows = [row for row, used in enumerate(fallbacks) if used is None]
        if with_reasons and rows:
            try:
                why = explain(self.served.rank, found, [ranked_items[row] for row in rows])
                reasons = dict(zip(rows, why, strict=True))
            except Exception:  # the annotation must never cost the answer itself
                _LOG.warning(
                    "could not explain the %s ranking; channels and scores left null", self.serving, exc_info=True
                )
        sids = self.lookups.sids(self.namespace, list({item for items in ranked_items for item in items}))
        answers = []
        for row, items in enumerate(ranked_items):
            default = Why(POPULARITY) if fallbacks[row] else Why()
            why = reasons.get(row, [default] * len(items))
            answers.append(
                Answer(
                    [
                        {"item_id": item, "sid": sids.get(item), "title": self.titles.get(item), **reason.as_dict()}
                        for item, reason in zip(items, why, strict=True)
                    ],
                    fallbacks[row],
                    list(frame["unknown_items"][row]),
                )
            )
        return answers

    def recommend(
        self, history: list[str] | None, user_id: str | None, k: int, with_reasons: bool = True
    ) -> tuple[Answer, str]:
        """The answer and where it came from: ``hit`` (the cache), ``miss`` (a known user, ranked) or ``none``."""
        stored = self.histories.get(user_id) if user_id is not None else None
        if history is None:
            if stored is None:
                raise UnknownUser(user_id)
            history = list(stored)
        if stored is None or user_id is None:
            return self.rank([history], k, with_reasons)[0], "none"
        entry = self.cache.get(user_id)
        if entry is not None and entry.history == tuple(history) and k <= self.cache.k:
            cached = entry.answer
            return Answer(cached.items[:k], cached.fallback, cached.unknown_items), "hit"
        if entry is not None and entry.history != tuple(history):
            self.cache.invalidate(user_id)
        answer = self.rank([history], k, with_reasons)[0]
        if k >= self.cache.k and with_reasons:
            self.cache.put(user_id, history, answer)
        return answer, "miss"

    def search_text(self, query: str, k: int, history: list[str] | None, personalization: float) -> dict[str, Any]:
        """Items for a text query: its codes, the items under its deepest prefix holding ``k``, ranked by cosine."""
        if self.search is None:
            raise SearchUnavailable(self.search_unavailable or "search is not available")
        with self.slots:
            vector = self.search.embed(query)
        codes = self.search.codes(vector)
        depth_of: dict[str, int] = {}
        for depth in range(len(codes), 0, -1):
            for item in self.lookups.items_under(self.namespace, _prefix(codes[:depth])):
                depth_of.setdefault(item, depth)
            if len(depth_of) >= k:
                break
        if len(depth_of) < k:  # the query's level-1 prefix holds fewer than k: the rest of the catalog follows
            for item in self.search.item_ids:
                depth_of.setdefault(item, 0)
        items = [item for item in depth_of if item in self.search.row_of]
        text = self.search.scores(vector, items)
        score = text
        known = [item for item in history or [] if item in self.search.row_of]
        unknown = list(dict.fromkeys(item for item in history or [] if item not in self.search.row_of))
        profile = self.search.profile(known) if known else None
        if profile is not None:
            taste = self.search.vectors[[self.search.row_of[item] for item in items]] @ profile[0]
            score = (1 - personalization) * text + personalization * taste
        order = np.argsort(-score, kind="stable")[:k]
        chosen = [items[i] for i in order]
        sids = self.lookups.sids(self.namespace, chosen)
        return {
            "query_codes": codes,
            "candidates": len(items),
            "personalized": profile is not None,
            "unknown_items": unknown,
            "items": [
                {
                    "item_id": items[i],
                    "sid": sids.get(items[i]),
                    "title": self.titles.get(items[i]),
                    "shared_depth": depth_of[items[i]],
                    "score": float(score[i]),
                    "text_score": float(text[i]),
                }
                for i in order
            ],
        }

    def item(self, item_id: str, limit: int) -> dict[str, Any]:
        """An item's Semantic ID and its neighbours: the items sharing its deepest prefixes, closest first."""
        sid = self.lookups.sids(self.namespace, [item_id]).get(item_id)
        if sid is None:
            raise UnknownItem(item_id)
        codes = [int(code) for code in sid.split("-")[:-1]]
        under = {
            depth: self.lookups.items_under(self.namespace, _prefix(codes[:depth]))
            for depth in range(1, len(codes) + 1)
        }
        neighbours: list[tuple[str, int]] = []
        seen = {item_id}
        for depth in range(len(codes), 0, -1):
            fresh = [item for item in under[depth] if item not in seen]
            seen.update(fresh)
            neighbours.extend((item, depth) for item in self._closest(item_id, fresh))
            if len(neighbours) >= limit:
                break
        neighbours = neighbours[:limit]
        sids = self.lookups.sids(self.namespace, [item for item, _ in neighbours])
        return {
            "item_id": item_id,
            "sid": sid,
            "codes": codes,
            "title": self.titles.get(item_id),
            "prefixes": [{"prefix": _prefix(codes[:d]), "depth": d, "items": len(under[d])} for d in sorted(under)],
            "neighbours": [
                {"item_id": item, "sid": sids.get(item), "title": self.titles.get(item), "shared_depth": depth}
                for item, depth in neighbours
            ],
        }

    def _closest(self, item_id: str, items: list[str]) -> list[str]:
        """``items`` by cosine to ``item_id``'s vector when the bundle has vectors, else as stored (by id)."""
        search = self.search
        if search is None or item_id not in search.row_of or not items:
            return items
        known = [item for item in items if item in search.row_of]
        scores = search.vectors[[search.row_of[item] for item in known]] @ search.vectors[search.row_of[item_id]]
        return [known[i] for i in np.argsort(-scores, kind="stable")] + [i for i in items if i not in search.row_of]


def _prefix(codes: Sequence[int]) -> str:
    return "-".join(str(int(code)) for code in codes)


def _titles(table: Any) -> dict[str, str | None]:
    if not isinstance(table, pl.DataFrame):
        return {}
    return dict(zip(table["item_id"].to_list(), table["title"].to_list(), strict=True))


def _histories(table: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, pl.DataFrame):
        return {}
    return {
        str(user): tuple(items)
        for user, items in zip(table["user_id"].to_list(), table["history"].to_list(), strict=True)
    }
