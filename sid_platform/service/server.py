"""``sid-platform serve``: the service under uvicorn, over the registry's champion.

Why settings in one dataclass: the command line, the Kubernetes manifest (environment) and the tests build the
same ``ServiceSettings``; ``build_app`` turns them into the app, ``serve`` runs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI

from sid_platform.registry import Tracking
from sid_platform.service.app import create_app
from sid_platform.service.lookup import DynamoDBLookupStore, InProcessLookupStore, LookupStore
from sid_platform.service.model import DEFAULT_CACHE_K
from sid_platform.service.reload import ChampionWatcher
from sid_platform.serving import RANKERS
from sid_platform.settings import library_defaults
from sid_platform.threads import use_threads

DEFAULT_MODEL = "sid-recommender"
LOOKUPS = ("memory", "dynamodb")


@dataclass(frozen=True)
class ServiceSettings:
    registered_model: str = DEFAULT_MODEL
    tracking_uri: str | None = None  # default: $MLFLOW_TRACKING_URI, else SQLite under the data home
    poll_seconds: float = 10.0
    cache_k: int = DEFAULT_CACHE_K
    precompute_users: int | None = None  # None: every known user
    ranking: str | None = None  # None: the ranking the champion's evaluation chose; else one of serving.RANKERS
    lookup: str = "memory"  # memory | dynamodb
    dynamodb_table: str = "sid-usids"
    dynamodb_endpoint: str | None = None  # a local DynamoDB; None: AWS (region and credentials from the env)
    dynamodb_region: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000


def lookup_store(settings: ServiceSettings) -> LookupStore:
    if settings.lookup == "memory":
        return InProcessLookupStore()
    if settings.lookup == "dynamodb":
        return DynamoDBLookupStore(
            settings.dynamodb_table,
            endpoint_url=settings.dynamodb_endpoint,
            region_name=settings.dynamodb_region,
            create=True,
        )
    raise ValueError(f"unknown lookup store {settings.lookup!r}; choose one of {', '.join(LOOKUPS)}")


def build_app(settings: ServiceSettings) -> FastAPI:
    """The app over the champion; a ``ranking`` no bundle can serve is refused here, before anything loads."""
    if settings.ranking is not None and settings.ranking not in RANKERS:
        raise ValueError(f"unknown ranking {settings.ranking!r}; choose one of {', '.join(RANKERS)}")
    use_threads("serving")  # one intra-op thread per request: requests are small batches (sid_platform/threads.py)
    watcher = ChampionWatcher(
        Tracking.resolve(settings.tracking_uri),
        settings.registered_model,
        lookup_store(settings),
        poll_seconds=settings.poll_seconds,
        cache_k=settings.cache_k,
        precompute_users=settings.precompute_users,
        ranking=settings.ranking,
    )
    return create_app(watcher)


def serve(settings: ServiceSettings) -> None:
    """Run until interrupted; the champion loads in the background (``/readyz`` says when)."""
    import uvicorn

    library_defaults(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")  # a log, not a terminal: no progress bars
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level="info", access_log=False)
