"""The real service (``sid-platform serve`` in its own process, uvicorn on a free loopback port) over champions
registered from the shared test-profile run, answering a real HTTP client: recommendations, search, the item
explanation, every bad input, and a champion switch and rollback mid-traffic with no failed request.

Here, beside the graph tests, because it serves what that one run trained (no training of its own). The versions
are registered under a model name of their own, so the run's ``sid-recommender`` champion stays as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sid_platform.assets.promotion import BUNDLE_COMPONENTS, derived_components
from sid_platform.loopback import free_port, stop, wait_for_port
from sid_platform.registry import (
    Tracking,
    champion,
    download_version,
    log_bundle,
    pinned_config,
    rollback,
    set_champion,
)
from sid_platform.semantic_ids.prefix_index import PrefixIndex
from sid_platform.service.app import create_app
from sid_platform.service.lookup import DynamoDBLookupStore, InProcessLookupStore
from sid_platform.service.model import ServiceModel
from sid_platform.service.reload import ChampionWatcher
from sid_platform.serving import MAX_K, RANKERS
from sid_platform_tests.assets.conftest import MainRun

MODEL = "sid-service-test"
POLL_SECONDS = 0.5
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Registry:
    tracking: Tracking
    first: int  # the run's bundle, served by router_fused_dpo
    second: int  # the same components served by router_hybrid_cosine: a visibly different champion
    folder: Path  # the first version, downloaded
    components: dict[str, Any]  # the run's bundle components
    pinned: dict[str, Any]  # the run champion's pinned config


@dataclass(frozen=True)
class Server:
    client: httpx.Client
    process: subprocess.Popen
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def registry(main_run: MainRun, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    tracking = Tracking.resolve(main_run.outputs["model_promotion"]["tracking_uri"])
    pinned = pinned_config(tracking, champion(tracking.client, "sid-recommender"))
    outputs = main_run.outputs
    components = {name: outputs[name] for name in BUNDLE_COMPONENTS}
    components |= derived_components(outputs["data_splits"], outputs["item_catalog"])
    reranked = {**pinned, "evaluation": {**pinned["evaluation"], "model": "router_fused_dpo"}}
    first = log_bundle(tracking, MODEL, components, reranked)
    cosine = {**pinned, "evaluation": {**pinned["evaluation"], "model": "router_hybrid_cosine"}}
    second = log_bundle(tracking, MODEL, components, cosine)
    set_champion(tracking.client, MODEL, int(first.version), note="the service test's first champion")
    folder = download_version(tracking, first, tmp_path_factory.mktemp("served"))
    return Registry(tracking, int(first.version), int(second.version), folder, components, pinned)


@pytest.fixture(scope="module")
def server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-m", "sid_platform.cli", "serve", "--port", str(port), "--model", MODEL]
    command += ["--tracking-uri", registry.tracking.uri, "--poll-seconds", str(POLL_SECONDS)]
    with open(log, "w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stdout=sink, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        wait_for_port(port, process, seconds=120)
        deadline = time.monotonic() + 180
        while client.get("/readyz").status_code != 200:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield Server(client, process, log)
    finally:
        client.close()
        stop(process)


@pytest.fixture(scope="module")
def direct(registry: Registry) -> ServiceModel:
    """The first champion loaded in this process, to compare the service's answers with."""
    return ServiceModel.load(registry.folder, str(registry.first), InProcessLookupStore(), precompute_users=5)


def _ids(items: list[dict]) -> list[str]:
    return [item["item_id"] for item in items]


def test_the_service_documents_itself_and_reports_health(server: Server, registry: Registry):
    assert server.client.get("/healthz").json() == {"status": "ok"}
    ready = server.client.get("/readyz").json()
    assert ready == {"status": "ready", "model_version": str(registry.first), "serving_model": "router_fused_dpo"}
    paths = server.client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/search", "/items/{item_id}", "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert server.client.get("/docs").status_code == 200


def test_a_history_is_recommended_with_sids_channels_and_bounded_scores(
    server: Server, direct: ServiceModel, main_run: MainRun
):
    history = [*next(iter(direct.histories.values()))[:3], "not-an-item"]
    response = server.client.post("/recommend", json={"history": history, "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["unknown_items"] == ["not-an-item"] and body["fallback"] is None and body["cache"] == "none"
    items = body["items"]
    assert _ids(items) == _ids(direct.rank([history], 5)[0].items)  # what the served model ranks
    table = main_run.outputs["usid_table"]
    sid_of = dict(zip(table["item_id"].to_list(), table["sid"].to_list(), strict=True))
    for item in items:
        assert item["sid"] == sid_of[item["item_id"]] and item["title"]
        assert item["channel"] in {"prefix", "ann", "both", "beams"}
        assert isinstance(item["base_score"], float) and isinstance(item["final_score"], float)
    assert len(set(_ids(items))) == 5
    finals = [item["final_score"] for item in items]  # the top 5 lie in the reranked pool: ordered by final score
    assert finals == sorted(finals, reverse=True)


def test_a_history_of_unknown_items_gets_the_popularity_fallback_and_lists_them(server: Server):
    body = server.client.post("/recommend", json={"history": ["x1", "x2", "x1"], "k": 3}).json()
    assert body["fallback"] == "popularity" and body["unknown_items"] == ["x1", "x2"]
    assert [item["channel"] for item in body["items"]] == ["popularity"] * 3


def test_a_known_user_is_answered_from_the_cache_until_their_history_changes(server: Server, direct: ServiceModel):
    user, stored = sorted(direct.histories.items())[0]
    ask = lambda **body: server.client.post("/recommend", json={"user_id": user, **body}).json()  # noqa: E731
    first = ask(k=10)
    assert first["cache"] == "hit" and _ids(first["items"]) == _ids(direct.rank([list(stored)], 10)[0].items)
    assert ask(k=4, history=list(stored))["cache"] == "hit" and len(ask(k=4)["items"]) == 4
    changed = [*stored, first["items"][0]["item_id"]]
    miss = ask(k=10, history=changed)
    assert miss["cache"] == "miss" and _ids(miss["items"]) == _ids(direct.rank([changed], 10)[0].items)
    assert ask(k=10, history=changed)["cache"] == "hit"  # the new history's answer is cached in its place
    assert ask(k=3)["cache"] == "miss"  # the stored history differs from the cached one now
    metrics = server.client.get("/metrics").text
    assert 'sid_topk_cache_total{result="hit"}' in metrics and 'sid_topk_cache_total{result="miss"}' in metrics


def test_a_ranking_override_serves_another_ranking_of_the_same_bundle(registry: Registry, direct: ServiceModel):
    cosine = ServiceModel.load(
        registry.folder, str(registry.first), InProcessLookupStore(), precompute_users=0, serving="router_hybrid_cosine"
    )
    assert (direct.serving, cosine.serving) == ("router_fused_dpo", "router_hybrid_cosine")  # the evaluation's, ours
    histories = [list(history) for history in sorted(direct.histories.values())[:20]]
    ranked = [_ids(answer.items) for answer in cosine.rank(histories, 10)]
    assert ranked == RANKERS["router_hybrid_cosine"](cosine.components)(histories, 10)
    assert ranked != [_ids(answer.items) for answer in direct.rank(histories, 10)]


def test_the_blended_ranking_is_explained_by_channel_and_ordered_by_its_final_score(registry: Registry):
    blended = ServiceModel.load(
        registry.folder, str(registry.first), InProcessLookupStore(), precompute_users=0, serving="router_sasrec_blend"
    )
    histories = [list(history) for history in sorted(blended.histories.values())[:20]]
    answers = blended.rank(histories, 10)
    assert [_ids(a.items) for a in answers] == RANKERS["router_sasrec_blend"](blended.components)(histories, 10)
    for answer in answers:
        assert all(item["channel"] in {"prefix", "ann", "both", "beams"} for item in answer.items)
        finals = [item["final_score"] for item in answer.items]  # the blended score the list is ordered by
        assert all(isinstance(f, float) for f in finals) and finals == sorted(finals, reverse=True)


def test_a_champion_that_cannot_serve_the_watchers_ranking_is_refused_and_the_last_one_kept(registry: Registry):
    """The canary case: the operator serves the reranked ranking; a new champion without the reranker fails to
    load with a one-line reason (``last_error``, what /readyz says while nothing is served) and the previous
    champion goes on serving. A ranking no bundle has fails the same way."""
    name, tracking = f"{MODEL}-ranking", registry.tracking
    fused = {**registry.pinned, "evaluation": {**registry.pinned["evaluation"], "model": "router_fused"}}
    full = log_bundle(tracking, name, registry.components, fused)
    set_champion(tracking.client, name, int(full.version), note="serves router_fused_dpo by override")
    watcher = ChampionWatcher(tracking, name, InProcessLookupStore(), precompute_users=0, ranking="router_fused_dpo")
    client = TestClient(create_app(watcher, start_watcher=False))
    assert watcher.poll_once() and watcher.current is not None
    ready = {"status": "ready", "model_version": str(full.version), "serving_model": "router_fused_dpo"}
    assert client.get("/readyz").json() == ready
    without_reranker = {key: value for key, value in registry.components.items() if key != "dpo_checkpoint"}
    partial = log_bundle(tracking, name, without_reranker, fused)
    set_champion(tracking.client, name, int(partial.version), note="no reranker in this bundle")
    assert not watcher.poll_once() and watcher.current.version == str(full.version)
    assert watcher.last_error == (
        f"champion v{partial.version} failed to load: MlflowException: the bundle cannot serve 'router_fused_dpo': "
        f"it has no 'dpo_checkpoint' component (it has {', '.join(sorted(without_reranker))})"
    )
    assert client.get("/readyz").json() == ready
    unknown = ChampionWatcher(tracking, name, InProcessLookupStore(), precompute_users=0, ranking="router_fancy")
    assert not unknown.poll_once() and unknown.current is None
    refused = TestClient(create_app(unknown, start_watcher=False)).get("/readyz")
    assert (
        refused.status_code == 503 and "the bundle cannot serve 'router_fancy'; it serves" in refused.json()["message"]
    )


def test_a_cache_hit_skips_the_model(direct: ServiceModel, monkeypatch: pytest.MonkeyPatch):
    class NoModel:
        catalog = direct.served.catalog

        def answer_traced(self, histories, k):
            raise AssertionError("the model was called")

    user, stored = sorted(direct.histories.items())[1]
    monkeypatch.setattr(direct, "served", NoModel())
    answer, source = direct.recommend(None, user, 10)
    assert source == "hit" and len(answer.items) == 10
    with pytest.raises(AssertionError, match="the model was called"):
        direct.recommend([*stored, stored[0]], user, 10)


def test_no_more_model_calls_run_at_once_than_the_service_has_slots(
    direct: ServiceModel, monkeypatch: pytest.MonkeyPatch
):
    real = direct.served
    running, most = 0, 0
    lock = threading.Lock()

    class CountingModel:
        catalog = real.catalog

        def answer_traced(self, histories, k):
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)  # long enough that unbounded callers would overlap
            with lock:
                running -= 1
            return real.answer_traced(histories, k)

    monkeypatch.setattr(direct, "served", CountingModel())
    monkeypatch.setattr(direct, "slots", threading.BoundedSemaphore(2))
    history = list(sorted(direct.histories.values())[0])
    callers = [threading.Thread(target=direct.rank, args=([history], 5, False)) for _ in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert most == 2


def test_text_search_lands_in_the_queries_prefix_and_can_be_personalised(server: Server, direct: ServiceModel):
    body = server.client.post("/search", json={"query": "Lips Balm", "k": 5}).json()
    assert len(body["query_codes"]) == direct.levels and not body["personalized"]
    items = body["items"]
    assert sum("Lips Balm" in item["title"] for item in items) >= 3, items
    assert all(item["shared_depth"] >= 1 for item in items) and body["candidates"] >= 5
    assert [item["score"] for item in items] == sorted((item["score"] for item in items), reverse=True)
    history = [item for item, title in direct.titles.items() if title and "Eyes Cream" in title][:3]
    mixed = {"query": "Lips Balm", "k": 5, "history": [*history, "zz"], "personalization": 0.5}
    personal = server.client.post("/search", json=mixed).json()
    assert personal["personalized"] and personal["unknown_items"] == ["zz"]
    assert all(item["score"] != pytest.approx(item["text_score"]) for item in personal["items"])


def test_an_item_is_explained_by_its_sid_and_its_neighbours_under_the_same_prefix(
    server: Server, main_run: MainRun, direct: ServiceModel
):
    item_id = main_run.outputs["usid_table"]["item_id"][7]
    body = server.client.get(f"/items/{item_id}", params={"limit": 12}).json()
    index = PrefixIndex.from_frame(main_run.outputs["prefix_index"])
    assert body["sid"] == main_run.outputs["usid_table"]["sid"][7] and len(body["codes"]) == direct.levels
    assert [p["items"] for p in body["prefixes"]] == [
        len(index.items_under(body["codes"][:depth])) for depth in range(1, direct.levels + 1)
    ]
    neighbours = body["neighbours"]
    assert len(neighbours) == 12 and item_id not in _ids(neighbours)
    depths = [n["shared_depth"] for n in neighbours]
    assert depths == sorted(depths, reverse=True) and depths[0] >= 1
    for neighbour in neighbours:
        shared = "-".join(map(str, body["codes"][: neighbour["shared_depth"]])) + "-"
        assert neighbour["sid"].startswith(shared)


BAD_REQUESTS = [
    # (path, raw body, content type, status, error, words in the message)
    ("/recommend", '{"history": [', "application/json", 400, "malformed_json", "not valid JSON"),
    ("/recommend", "[1, 2]", "application/json", 400, "malformed_body", "JSON object"),
    ("/recommend", "", "application/json", 400, "malformed_body", "JSON object"),
    ("/recommend", '{"history": ["a"]}', "text/plain", 400, "malformed_body", "application/json"),
    ("/recommend", '{"history": [], "k": 5}', None, 422, "invalid_request", "history is empty"),
    (
        "/recommend",
        json.dumps({"history": ["a"] * 1001}),
        None,
        422,
        "invalid_request",
        "history: List should have at most 1000",
    ),
    ("/recommend", '{"history": "B0001"}', None, 422, "invalid_request", "history: Input should be a valid list"),
    ("/recommend", '{"history": ["a", 7]}', None, 422, "invalid_request", "history[1]: Input should be a valid string"),
    (
        "/recommend",
        '{"history": ["a"], "k": 0}',
        None,
        422,
        "invalid_request",
        "k: Input should be greater than or equal to 1",
    ),
    (
        "/recommend",
        f'{{"history": ["a"], "k": {MAX_K + 1}}}',
        None,
        422,
        "invalid_request",
        f"less than or equal to {MAX_K}",
    ),
    ("/recommend", '{"history": ["a"], "k": "5"}', None, 422, "invalid_request", "k: Input should be a valid integer"),
    ("/recommend", '{"history": ["a"], "k": 2.5}', None, 422, "invalid_request", "k: Input should be a valid integer"),
    ("/recommend", '{"histroy": ["a"]}', None, 422, "invalid_request", "histroy: Extra inputs are not permitted"),
    ("/recommend", "{}", None, 422, "invalid_request", "send a history"),
    ("/recommend", '{"user_id": "nobody-at-all"}', None, 404, "unknown_user", "nobody-at-all"),
    ("/recommend", "x" * ((1 << 20) + 1), "application/json", 413, "too_large", "bytes"),
    ("/search", '{"query": "   "}', None, 422, "invalid_request", "query: String should have at least 1 character"),
    ("/search", json.dumps({"query": "q" * 501}), None, 422, "invalid_request", "at most 500 characters"),
    ("/search", '{"query": "balm", "personalization": 2}', None, 422, "invalid_request", "personalization"),
    ("/search", '{"query": "balm", "k": -1}', None, 422, "invalid_request", "k: "),
]


@pytest.mark.parametrize(("path", "raw", "content_type", "status", "error", "words"), BAD_REQUESTS)
def test_a_bad_request_gets_a_clear_json_4xx_and_never_a_traceback(
    server: Server, path: str, raw: str, content_type: str | None, status: int, error: str, words: str
):
    headers = {"content-type": content_type or "application/json"}
    response = server.client.post(path, content=raw.encode(), headers=headers)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and words in body["message"], body
    assert "\n" not in body["message"] and "Traceback" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/items/not-an-item", 404, "unknown_item"),
        ("GET", "/items/x?limit=0", 422, "invalid_request"),
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/recommend", 405, "method_not_allowed"),
    ],
)
def test_unknown_items_routes_and_methods_are_json_errors(
    server: Server, method: str, path: str, status: int, error: str
):
    response = server.client.request(method, path)
    assert response.status_code == status and response.json()["error"] == error


def test_the_lookups_in_dynamodb_answer_as_the_in_process_ones(
    registry: Registry, direct: ServiceModel, moto_endpoint: str, aws_session
):
    store = DynamoDBLookupStore(
        f"svc-{uuid.uuid4().hex[:8]}", endpoint_url=moto_endpoint, session=aws_session, create=True
    )
    model = ServiceModel.load(registry.folder, str(registry.first), store, precompute_users=0)
    item_id = sorted(direct.served.catalog)[11]
    assert model.item(item_id, 15) == direct.item(item_id, 15)
    history = list(sorted(direct.histories.values())[3])
    assert model.rank([history], 5)[0] == direct.rank([history], 5)[0]
    assert model.search_text("Face Serum", 5, None, 0.3) == direct.search_text("Face Serum", 5, None, 0.3)


def test_a_champion_switch_and_a_rollback_mid_traffic_fail_no_request(server: Server, registry: Registry):
    """A client thread keeps asking while the alias moves to v2 and back; every answer is a 200 from one model."""
    client = server.client
    history = ["SYN00001", "SYN00028"]
    seen: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as own:
            while not stop.is_set():
                try:
                    response = own.post("/recommend", json={"history": history, "k": 5})
                    body = response.json()
                    seen.append((response.status_code, body.get("model_version", "?"), body.get("serving_model", "?")))
                except Exception as error:  # a dropped connection is a failed request too
                    seen.append((0, type(error).__name__, str(error)))

    def wait_for(version: int, seconds: float) -> float:
        started = time.monotonic()
        while not seen or seen[-1][1] != str(version):
            assert time.monotonic() - started < seconds, f"v{version} not served in {seconds}s\n{server.log_tail()}"
            time.sleep(0.05)
        return time.monotonic() - started

    loaded_before = _metric(client, 'sid_reloads_total{outcome="loaded"}')
    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_for(registry.first, 30)
        set_champion(registry.tracking.client, MODEL, registry.second, note="the switch under traffic")
        wait_for(registry.second, 180)  # downloaded, loaded, users precomputed, then swapped
        rollback(registry.tracking.client, MODEL)  # back to the first, still loaded: a swap at the next poll
        rolled_back_in = wait_for(registry.first, 30)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=60)
    failed = [entry for entry in seen if entry[0] != 200]
    assert not failed, failed[:5]
    versions = [version for _, version, _ in seen]
    switches = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
    assert switches == [str(registry.first), str(registry.second), str(registry.first)]  # never back and forth
    assert {serving for _, version, serving in seen if version == str(registry.second)} == {"router_hybrid_cosine"}
    assert rolled_back_in < POLL_SECONDS + 10  # one poll, no download (generous for a busy 2-core machine)
    assert _metric(client, 'sid_reloads_total{outcome="loaded"}') == loaded_before + 1  # only v2 was loaded
    assert f"sid_champion_version {registry.first}.0" in client.get("/metrics").text
    assert server.process.poll() is None and client.get("/healthz").status_code == 200


def _metric(client: httpx.Client, series: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0
