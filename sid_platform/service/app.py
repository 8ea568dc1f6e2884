"""The HTTP service: FastAPI routes over the champion the ``ChampionWatcher`` holds.

Why these rules: a client gets either an answer or one JSON error it can act on, never a stack trace, and no
request can take the process down. Malformed JSON, or a body that is not a JSON object, is a 400; a field out of
its range (k, history length, an id that is not a string, a field the API does not have) a 422 naming the field;
an unknown user or item a 404; a body over ``MAX_BODY_BYTES`` a 413; no champion loaded yet a 503. Anything
unexpected is logged with its traceback and answered 500 in one line. Item ids outside the catalog are not an
error: they are ignored and listed in ``unknown_items``.

Each request reads the served model once (``watcher.current``) and uses it to the end, so a champion swap
never mixes two models in one answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints
from starlette.exceptions import HTTPException
from starlette.routing import Match

from sid_platform.service.metrics import CONTENT_TYPE, Metrics
from sid_platform.service.model import ServiceModel, UnknownItem, UnknownUser
from sid_platform.service.reload import ChampionWatcher
from sid_platform.service.search import SearchUnavailable
from sid_platform.serving import MAX_K

_LOG = logging.getLogger(__name__)
MAX_HISTORY = 1000  # items per history: far beyond what the models read (their max_len), small enough to parse
MAX_BODY_BYTES = 1 << 20
MAX_QUERY_CHARS = 500
MAX_NEIGHBOURS = 100

ItemId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
K = Annotated[StrictInt, Field(ge=1, le=MAX_K, description=f"how many items, 1 to {MAX_K}")]
History = Annotated[
    list[ItemId] | None,
    Field(max_length=MAX_HISTORY, description=f"item ids, oldest first (at most {MAX_HISTORY})"),
]


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    history: History = None
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="a known user: without a history, their stored one is used (and its precomputed top-K)"
    )
    k: K = 10
    explain: StrictBool = Field(True, description="channel and scores per item (costs a second retrieval)")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)]
    k: K = 10
    history: History = Field(None, description="personalise: blend in the profile of these items")
    personalization: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.3, description="weight of the history's profile against the text (0 to 1)"
    )


class RecommendedItem(BaseModel):
    item_id: str
    sid: str | None
    title: str | None
    channel: str | None = Field(description="prefix, ann, both (the router's channels), catalog, popularity or null")
    base_score: float | None
    final_score: float | None


class RecommendResponse(BaseModel):
    model_version: str
    serving_model: str
    user_id: str | None
    cache: str = Field(description="hit (precomputed, no model call), miss (a known user, ranked) or none")
    fallback: str | None = Field(description="popularity when no item of the history is known; else null")
    unknown_items: list[str]
    items: list[RecommendedItem]


class SearchItem(BaseModel):
    item_id: str
    sid: str | None
    title: str | None
    shared_depth: int = Field(description="how many of the query's codes the item's Semantic ID starts with")
    score: float
    text_score: float


class SearchResponse(BaseModel):
    model_version: str
    query_codes: list[int]
    candidates: int
    personalized: bool
    unknown_items: list[str]
    items: list[SearchItem]


class Neighbour(BaseModel):
    item_id: str
    sid: str | None
    title: str | None
    shared_depth: int


class PrefixCount(BaseModel):
    prefix: str
    depth: int
    items: int


class ItemResponse(BaseModel):
    model_version: str
    item_id: str
    sid: str
    codes: list[int]
    title: str | None
    prefixes: list[PrefixCount]
    neighbours: list[Neighbour]


class ErrorResponse(BaseModel):
    error: str
    message: str
    details: list[dict[str, Any]] = []


class ServiceError(Exception):
    """An answer that is not a 200: status, a stable error code, one line."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 404, 413, 422, 500, 501, 503)
}


def _error(status: int, error: str, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "details": details or []}, status_code=status)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else f".{part}" if text else part
    return text or "body"


def validation_response(error: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors as one line (400 for a body that is not JSON or not an object, else 422)."""
    problems = error.errors()
    for problem in problems:
        if problem.get("type") == "json_invalid":
            where = problem.get("ctx", {}).get("error", "")
            return _error(400, "malformed_json", f"the body is not valid JSON ({where})".replace(" ()", ""))
        if tuple(problem.get("loc", ())) == ("body",):
            return _error(400, "malformed_body", "the body must be a JSON object (Content-Type: application/json)")
    details = [{"field": _field(tuple(p.get("loc", ()))), "message": str(p.get("msg", ""))} for p in problems[:20]]
    message = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return _error(422, "invalid_request", message + more, details)


def create_app(watcher: ChampionWatcher, metrics: Metrics | None = None, *, start_watcher: bool = True) -> FastAPI:
    """The service over ``watcher``'s champion; the watcher polls while the app runs (``start_watcher``)."""
    metrics = metrics or Metrics()

    def on_reload(event: str, version: str | None, seconds: float) -> None:
        metrics.reload(event)
        if event == "swapped" and version is not None:
            metrics.champion(version)

    watcher.listener = on_reload
    if watcher.current is not None:
        metrics.champion(watcher.current.version)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_watcher:
            watcher.start()
        try:
            yield
        finally:
            watcher.stop()

    app = FastAPI(
        title="sid-platform recommendations",
        version="1",
        description="Semantic-ID recommendations, text search and item explanations from the registry's champion.",
        lifespan=lifespan,
        responses=ERRORS,
    )

    def served() -> ServiceModel:
        model = watcher.current  # read once: this request keeps this model to its end
        if model is None:
            raise ServiceError(503, "not_ready", f"no champion is loaded yet: {watcher.last_error or 'loading'}")
        return model

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Size limit, metrics, and the last line of defence: any exception becomes a one-line 500."""
        started = time.perf_counter()
        endpoint = next(
            (route.path for route in app.router.routes if route.matches(request.scope)[0] == Match.FULL), "unmatched"
        )
        try:
            length = int(request.headers.get("content-length") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            response: Response = _error(413, "too_large", f"the body has {length} bytes; at most {MAX_BODY_BYTES}")
        else:
            try:
                response = await call_next(request)
            except Exception:
                incident = uuid.uuid4().hex[:12]
                _LOG.exception("request %s %s failed (incident %s)", request.method, request.url.path, incident)
                response = _error(500, "internal", f"the service failed to answer; the log has incident {incident}")
        metrics.request(endpoint, request.method, response.status_code, time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return validation_response(error)

    @app.exception_handler(ServiceError)
    async def refused(_: Request, error: ServiceError) -> JSONResponse:
        return _error(error.status, error.error, error.message)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        names = {404: "not_found", 405: "method_not_allowed"}
        return _error(error.status_code, names.get(error.status_code, "http_error"), str(error.detail))

    @app.get("/healthz", summary="Liveness: the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: a champion is loaded", responses={503: {"model": ErrorResponse}})
    def readyz() -> Any:
        model = watcher.current
        if model is None:
            return _error(503, "not_ready", f"no champion is loaded yet: {watcher.last_error or 'loading'}")
        return {"status": "ready", "model_version": model.version, "serving_model": model.serving}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/recommend", response_model=RecommendResponse, summary="Top-k items for a history or a known user")
    def recommend(body: RecommendRequest) -> dict[str, Any]:
        if body.history is None and body.user_id is None:
            raise ServiceError(422, "invalid_request", "send a history (item ids, oldest first) or a known user_id")
        if body.history is not None and not body.history:
            raise ServiceError(
                422, "invalid_request", "history is empty: send at least one item id, or leave it out with a user_id"
            )
        model = served()
        try:
            answer, cache = model.recommend(body.history, body.user_id, body.k, body.explain)
        except UnknownUser:
            raise ServiceError(
                404, "unknown_user", f"user {body.user_id!r} has no stored history; send a history"
            ) from None
        if cache != "none":
            metrics.cache(cache)
        return {
            "model_version": model.version,
            "serving_model": model.serving,
            "user_id": body.user_id,
            "cache": cache,
            "fallback": answer.fallback,
            "unknown_items": answer.unknown_items,
            "items": answer.items,
        }

    @app.post("/search", response_model=SearchResponse, summary="Items for a free-text query, in the same code space")
    def search(body: SearchRequest) -> dict[str, Any]:
        if body.history is not None and not body.history:
            raise ServiceError(422, "invalid_request", "history is empty: leave it out for a search without one")
        model = served()
        try:
            found = model.search_text(body.query, body.k, body.history, body.personalization)
        except SearchUnavailable as reason:
            raise ServiceError(501, "search_unavailable", str(reason)) from None
        return {"model_version": model.version, **found}

    @app.get("/items/{item_id}", response_model=ItemResponse, summary="An item's Semantic ID and its neighbours")
    def item(
        item_id: Annotated[str, Path(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=MAX_NEIGHBOURS, description="neighbours to list")] = 10,
    ) -> dict[str, Any]:
        model = served()
        try:
            return {"model_version": model.version, **model.item(item_id, limit)}
        except UnknownItem:
            raise ServiceError(404, "unknown_item", f"item {item_id!r} is not in v{model.version}'s catalog") from None

    return app
