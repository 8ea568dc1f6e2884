"""The service's error rules and metrics over a stand-in model, in process (no champion, no training).

What is checked here is what no real model can be made to do on demand: a failure inside the model is a
one-line 500 with no traceback and the process keeps answering; before a champion loads, readiness and every
model route say 503; without prometheus_client the metrics are still the text exposition format. The real
service over a real champion is tested in ``sid_platform_tests/assets/test_service.py``.
"""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from sid_platform.registry import Tracking
from sid_platform.service.app import create_app
from sid_platform.service.lookup import InProcessLookupStore
from sid_platform.service.metrics import Metrics
from sid_platform.service.model import Answer, UnknownItem
from sid_platform.service.reload import ChampionWatcher
from sid_platform.service.server import ServiceSettings, build_app


class Broken:
    """A loaded model whose ranking fails the way a bug would."""

    version, serving = "7", "router_fused_dpo"

    def recommend(self, history, user_id, k, with_reasons):
        raise RuntimeError("secret internal detail")


class Fine(Broken):
    def recommend(self, history, user_id, k, with_reasons):
        items = [
            {"item_id": "a", "sid": "1-2-0", "title": None, "channel": "ann", "base_score": 0.5, "final_score": 0.5}
        ]
        return Answer(items, None, ["zz"]), "none"

    def item(self, item_id, limit):
        raise UnknownItem(item_id)


def _client(model, metrics: Metrics | None = None) -> TestClient:
    watcher = ChampionWatcher(Tracking("sqlite:////nonexistent/mlflow.db"), "m", InProcessLookupStore())
    watcher.current = model
    return TestClient(create_app(watcher, metrics, start_watcher=False), raise_server_exceptions=False)


def test_a_failure_inside_the_model_is_a_one_line_500_without_a_traceback():
    client = _client(Broken())
    response = client.post("/recommend", json={"history": ["a"], "k": 3})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal" and "incident" in body["message"] and "\n" not in body["message"]
    assert "Traceback" not in response.text and "secret internal detail" not in response.text
    assert client.get("/healthz").json() == {"status": "ok"}  # still answering


def test_before_a_champion_loads_readiness_and_the_model_routes_say_503():
    client = _client(None)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["error"] == "not_ready"
    for response in (
        client.post("/recommend", json={"history": ["a"]}),
        client.post("/search", json={"query": "balm"}),
        client.get("/items/a"),
    ):
        assert response.status_code == 503 and response.json()["error"] == "not_ready"


@pytest.mark.parametrize("use_prometheus_client", [True, False])
def test_metrics_count_requests_by_route_and_status_with_latency_and_the_champion(use_prometheus_client: bool):
    client = _client(Fine(), Metrics(use_prometheus_client))
    assert client.post("/recommend", json={"history": ["a"]}).json()["unknown_items"] == ["zz"]
    client.post("/recommend", json={"k": 0, "history": ["a"]})
    assert client.get("/items/whatever-it-is").status_code == 404  # counted by route template, not one series per id
    text = client.get("/metrics").text
    assert 'sid_requests_total{endpoint="/recommend",method="POST",status="200"} 1.0' in text
    assert 'sid_requests_total{endpoint="/recommend",method="POST",status="422"} 1.0' in text
    assert 'endpoint="/items/{item_id}"' in text and "whatever-it-is" not in text
    assert 'sid_request_seconds_bucket{endpoint="/recommend",le="+Inf"} 2.0' in text
    assert "sid_request_seconds_sum" in text and "sid_champion_version 7.0" in text


class Slow(Fine):
    """Holds its request until released, to swap the champion while it is in flight."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.entered, self.release = threading.Event(), threading.Event()

    def recommend(self, history, user_id, k, with_reasons):
        self.entered.set()
        assert self.release.wait(30)
        return super().recommend(history, user_id, k, with_reasons)


def test_a_request_in_flight_finishes_on_the_model_it_started_with_while_new_ones_get_the_new_one():
    old, new = Slow("1"), Fine()
    new.version = "2"
    watcher = ChampionWatcher(Tracking("sqlite:////nonexistent/mlflow.db"), "m", InProcessLookupStore())
    watcher.current = old
    with TestClient(create_app(watcher, start_watcher=False)) as client:
        answers: list[dict] = []
        in_flight = threading.Thread(
            target=lambda: answers.append(client.post("/recommend", json={"history": ["a"]}).json())
        )
        in_flight.start()
        assert old.entered.wait(30)
        watcher.current = new  # the swap, as the watcher does it
        assert client.post("/recommend", json={"history": ["a"]}).json()["model_version"] == "2"
        old.release.set()
        in_flight.join(30)
    assert [answer["model_version"] for answer in answers] == ["1"]


def test_an_unknown_ranking_is_refused_before_anything_loads():
    with pytest.raises(ValueError, match=r"^unknown ranking 'router_fancy'; choose one of sasrec, router_generative, "):
        build_app(ServiceSettings(ranking="router_fancy", tracking_uri="sqlite:////nonexistent/mlflow.db"))
