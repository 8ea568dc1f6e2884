"""Follow the registry's ``champion`` alias: poll it, load a new champion fully beside the old one, then swap.

Why this shape: a request reads ``watcher.current`` once and keeps that model to the end, so the swap (one
reference assignment, atomic in Python) never changes a model under a request in flight, and the old model
lives until its last request lets go of it. A champion is loaded completely (components hash-checked, lookups
written, the known users' top-K precomputed) before it is served. The previous champion stays loaded, so a
rollback to it is a swap at the next poll, with nothing to download; any other version is loaded the same way
as a new one. A registry that cannot be reached, or a version that fails to load, leaves the current champion
serving and is retried at the next poll.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion

from sid_platform.registry import Tracking, champion, download_version
from sid_platform.service.lookup import LookupStore
from sid_platform.service.model import DEFAULT_CACHE_K, ServiceModel

_LOG = logging.getLogger(__name__)

# (what happened: "loaded" | "swapped" | "failed" | "poll_failed", the version or None, seconds it took)
Listener = Callable[[str, str | None, float], None]


class ChampionWatcher:
    """Holds the served ``ServiceModel`` and moves it with the alias, polling every ``poll_seconds``."""

    def __init__(
        self,
        tracking: Tracking,
        registered_model: str,
        lookups: LookupStore,
        *,
        poll_seconds: float = 10.0,
        cache_k: int = DEFAULT_CACHE_K,
        precompute_users: int | None = None,
        ranking: str | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.tracking = tracking
        self.registered_model = registered_model
        self.lookups = lookups
        self.poll_seconds = poll_seconds
        self.cache_k = cache_k
        self.precompute_users = precompute_users
        self.ranking = ranking  # None: each champion's evaluation's choice; else this ranking of every champion
        self.listener = listener
        self.current: ServiceModel | None = None  # what requests read; replaced, never mutated
        self.last_error: str | None = None
        self._retained: dict[str, ServiceModel] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _tell(self, event: str, version: str | None, seconds: float) -> None:
        if self.listener is not None:
            self.listener(event, version, seconds)

    def poll_once(self) -> bool:
        """Serve the version the alias names; True when the served model changed."""
        started = time.perf_counter()
        try:
            found = champion(self.tracking.client, self.registered_model)
        except Exception as error:  # the registry is down or refused: keep serving what we have
            self.last_error = f"the registry could not be read: {type(error).__name__}: {error}"
            _LOG.warning("champion poll failed; still serving %s", self._served(), exc_info=True)
            self._tell("poll_failed", None, time.perf_counter() - started)
            return False
        if found is None:
            self.last_error = f"{self.registered_model!r} has no {'champion'!r} alias in {self.tracking.uri}"
            return False
        version = str(found.version)
        if self.current is not None and self.current.version == version:
            self.last_error = None
            return False
        model = self._retained.get(version)
        if model is None:
            try:
                model = self._load(found)
            except Exception as error:
                self.last_error = f"champion v{version} failed to load: {type(error).__name__}: {error}"
                _LOG.exception("champion v%s failed to load; still serving %s", version, self._served())
                self._tell("failed", version, time.perf_counter() - started)
                return False
            self._tell("loaded", version, time.perf_counter() - started)
        previous = self.current
        self.current = model  # the swap: requests from here on get the new model
        self._retained = {version: model}
        if previous is not None and previous.version != version:
            self._retained[previous.version] = previous  # kept for a rollback; anything older is dropped
        self.last_error = None
        _LOG.info(
            "serving champion v%s with %s (was %s)",
            version,
            model.serving,
            f"v{previous.version}" if previous else "nothing",
        )
        self._tell("swapped", version, time.perf_counter() - started)
        return True

    def _load(self, version: ModelVersion) -> ServiceModel:
        folder = tempfile.TemporaryDirectory(prefix=f"sid-serve-v{version.version}-")
        try:
            model_dir = download_version(self.tracking, version, Path(folder.name))
            return ServiceModel.load(
                model_dir,
                str(version.version),
                self.lookups,
                cache_k=self.cache_k,
                precompute_users=self.precompute_users,
                serving=self.ranking,
                keep=folder,  # removed when the model is dropped and no request holds it
            )
        except BaseException:
            folder.cleanup()
            raise

    def _served(self) -> str:
        return f"v{self.current.version}" if self.current is not None else "nothing"

    def start(self) -> None:
        """Poll now and then every ``poll_seconds`` on a daemon thread, until ``stop``."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # never let the watcher die: the next poll tries again
                _LOG.exception("champion poll raised")
            self._stop.wait(self.poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
