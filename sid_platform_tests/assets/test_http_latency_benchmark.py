"""``benchmarks/http_latency.py`` against the shared test-profile run's champion, for a second per level: the real
service starts, answers every level and the cache-hit row without an error, and the payload has the shape the
results file stores. The benchmark itself runs on Beauty; no figure here is a timing to hold the code to.

Here, beside the graph tests, because it serves what that one run registered and reads its stored ``data_splits``.
"""

from __future__ import annotations

import json

from benchmarks.http_latency import Options, request_histories, run, table
from sid_platform.artifacts import read_artifact
from sid_platform.registry import Tracking, champion, pinned_config
from sid_platform.serving import RANKERS
from sid_platform.settings import data_home
from sid_platform.storage import LocalBlobStore
from sid_platform.threads import threads_for
from sid_platform_tests.assets.conftest import MainRun


def test_requests_are_real_histories_before_the_test_item(in_main_run_home: MainRun):
    splits = read_artifact(LocalBlobStore(data_home() / "assets"), "data_splits")
    histories = request_histories(splits, users=30, seed=1, length=4)
    assert len(histories) == 30 and histories == request_histories(splits, users=30, seed=1, length=4)
    assert all(1 <= len(history) <= 4 for history in histories)
    tested = splits.filter(splits["split"] == "test")
    user = tested["user_id"][0]
    rows = splits.filter(splits["user_id"] == user).sort("seq_index")
    before = rows["item_id"].to_list()[:-1]  # the test item is the user's last
    assert request_histories(splits.filter(splits["user_id"] == user), users=5, seed=0, length=50) == [before[-50:]]


def test_every_level_and_the_cache_hit_row_are_measured_without_an_error(in_main_run_home: MainRun):
    lines: list[str] = []
    options = Options(clients=(1, 2), seconds=1, warmup_requests=4, users=40, precompute_users=5)
    payload = run(options, lines.append)
    json.dumps(payload)  # what write_result stores
    served = champion(Tracking.resolve().client, "sid-recommender")
    assert payload["served"]["model_version"] == str(served.version) and payload["served"]["ranking"] in RANKERS
    levels = payload["levels"]
    assert [(level["load"], level["clients"]) for level in levels] == [("history", 1), ("history", 2), ("cache_hit", 1)]
    for level in levels:
        assert level["requests"] > 0 and level["statuses"] == {"200": level["requests"]}, level
        assert level["non_2xx"] == 0 and level["connection_errors"] == 0 and level["throughput_rps"] > 0
        assert 0 < level["p50_ms"] <= level["p95_ms"] <= level["p99_ms"] <= level["max_ms"]
    assert levels[-1]["cache_hits"] == levels[-1]["requests"]  # the precomputed users' answers, no model call
    memory = payload["memory"]
    assert 0 < memory["after_ready"]["rss_mib"] <= memory["at_end"]["peak_rss_mib"]
    assert not payload["service_exited_during_run"] and payload["requests"]["users"] == 40
    assert payload["service_command"][1:4] == ["-m", "sid_platform.cli", "serve"]
    assert "--ranking" not in payload["service_command"] and payload["options"]["clients"] == (1, 2)
    assert payload["threads"]["torch_intra_op"] == threads_for("serving")
    assert table(payload).count("\n| ") == len(levels) and len(lines) == len(levels) + 1


def test_the_ranking_option_serves_another_ranking_of_the_champion(in_main_run_home: MainRun):
    tracking = Tracking.resolve()
    chosen = pinned_config(tracking, champion(tracking.client, "sid-recommender"))["evaluation"]["model"]
    other = next(name for name in RANKERS if name.startswith("router_") and name != chosen)
    payload = run(Options(clients=(1,), seconds=0.5, warmup_requests=2, users=10, ranking=other))
    assert payload["served"]["ranking"] == other and payload["service_command"][-2:] == ["--ranking", other]
    assert [level["load"] for level in payload["levels"]] == ["history"]  # no cache-hit row without precomputed users
    assert payload["levels"][0]["non_2xx"] == 0 and payload["levels"][0]["requests"] > 0
