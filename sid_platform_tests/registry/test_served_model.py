"""The registered bundle as a client meets it: through ``mlflow.pyfunc.load_model`` and through the scoring server
that ``mlflow models serve`` runs. Every bad request is a one-line INVALID_PARAMETER_VALUE (HTTP 400) with no
stack trace; a history the model cannot rank gets the popularity fallback, flagged; unknown ids come back; the
loaded model runs torch on one thread; a rollback to a version that does not exist says which ones do."""

import dataclasses
import json
import re
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import polars as pl
import pytest
import torch
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel, scoring_server

from sid_platform.cli import USAGE_ERROR, main
from sid_platform.registry import Tracking, download_version, load_bundle, log_bundle, rollback
from sid_platform.serving import MAX_K, POPULARITY, popularity_table
from sid_platform.settings import TORCH_THREADS_ENV
from sid_platform_tests.registry.test_registry import _components, _register

# Training interactions: i3 and i7 twice (i7's test interaction does not count), i9 once.
SPLITS = pl.DataFrame({"item_id": ["i7", "i7", "i3", "i9", "i3", "i7"], "split": ["train"] * 5 + ["test"]})
FRAME = pd.DataFrame({"history": [["i1", "i2"]]})


@pytest.fixture(scope="module")
def model_dir(tracking: Tracking, tmp_path_factory: pytest.TempPathFactory) -> Path:
    components = {**_components(seed=0), POPULARITY: popularity_table(SPLITS)}
    version = log_bundle(tracking, "rec-served", components, {"run_config": {}, "evaluation": {"model": "sasrec"}})
    return download_version(tracking, version, tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def served(model_dir: Path) -> PyFuncModel:
    return mlflow.pyfunc.load_model(str(model_dir))


def test_a_history_is_ranked_and_its_unknown_ids_reported(served: PyFuncModel):
    frame = pd.DataFrame({"history": [["i1", "i2"], ["i1", "nope", "i2", "nope", "zz"]]})
    out = served.predict(frame, params={"k": 3})
    assert list(out.columns) == ["items", "sids", "fallback", "unknown_items"] and len(out) == 2
    assert out["fallback"].tolist() == [None, None]
    assert [list(row) for row in out["unknown_items"]] == [[], ["nope", "zz"]]
    assert list(out["items"][0]) == list(out["items"][1]) and len(out["items"][0]) == 3  # unknown ids change nothing


def test_an_empty_or_all_unknown_history_gets_the_popularity_fallback_flagged(served: PyFuncModel):
    out = served.predict(pd.DataFrame({"history": [[], ["x1", "x2"], ["i1"]]}), params={"k": 2})
    assert out["fallback"].tolist() == [POPULARITY, POPULARITY, None]
    assert list(out["items"][0]) == list(out["items"][1]) == ["i3", "i7"]  # most popular in training first
    assert [list(row) for row in out["unknown_items"]] == [[], ["x1", "x2"], []]
    assert all(sid.count("-") == 2 for sid in out["sids"][0])


def test_no_rows_in_give_no_rows_out(served: PyFuncModel):
    out = served.predict(pd.DataFrame({"history": pd.Series([], dtype=object)}), params={"k": 3})
    assert len(out) == 0 and list(out.columns) == ["items", "sids", "fallback", "unknown_items"]


@pytest.mark.parametrize("k", [-1, 0, MAX_K + 1])
def test_k_out_of_range_is_a_one_line_invalid_parameter_error(served: PyFuncModel, k: int):
    with pytest.raises(MlflowException) as caught:
        served.predict(FRAME, params={"k": k})
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and caught.value.get_http_status_code() == 400
    assert caught.value.message == f"params.k must be a whole number from 1 to {MAX_K}, got {k}"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"histroy": [["i1"]]}), "the input has no 'history' column"),
        (pd.DataFrame({"history": ["i1,i2"]}), "history[0] is a string ('i1,i2'), not a list of item ids"),
    ],
)
def test_a_malformed_frame_is_a_one_line_error_naming_the_field(served: PyFuncModel, frame, message: str):
    """The model's own check; through MLflow, its schema enforcement refuses such a frame first, also as a 400."""
    with pytest.raises(MlflowException) as caught:
        served.unwrap_python_model().predict(None, frame, params={"k": 3})
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and caught.value.message.startswith(message)
    assert "\n" not in caught.value.message
    with pytest.raises(MlflowException) as through_mlflow:
        served.predict(frame, params={"k": 3})
    assert through_mlflow.value.error_code == "INVALID_PARAMETER_VALUE" and "history" in through_mlflow.value.message


def test_an_id_that_is_not_a_string_is_refused_or_reported_unknown(served: PyFuncModel):
    """In process the model refuses it; MLflow's schema enforcement turns it into a string first, which is then
    an unknown id, reported back."""
    frame = pd.DataFrame({"history": [["i1", 2]]})
    with pytest.raises(MlflowException, match=re.escape("history[0][1] must be an item id (a string), got int 2")):
        served.unwrap_python_model().predict(None, frame, params={"k": 3})
    out = served.predict(frame, params={"k": 3})
    assert out["fallback"].tolist() == [None] and [list(row) for row in out["unknown_items"]] == [["2"]]


def test_an_unexpected_failure_is_a_one_line_internal_error(served: PyFuncModel, monkeypatch: pytest.MonkeyPatch):
    def broken(histories: list[list[str]], k: int) -> list[list[str]]:  # a ranking that fails inside
        raise AttributeError("'NoneType' object has no attribute 'score'")

    model = served.unwrap_python_model()
    monkeypatch.setattr(model, "served", dataclasses.replace(model.served, rank=broken))
    with pytest.raises(MlflowException) as caught:
        served.predict(FRAME, params={"k": 3})
    assert caught.value.error_code == "INTERNAL_ERROR" and caught.value.get_http_status_code() == 500
    assert caught.value.message == (
        "the model failed to rank this request (AttributeError); the server log has the details"
    )


def _invoke(served: PyFuncModel, body: str, content_type: str) -> tuple[int, dict | list]:
    """What the scoring server of ``mlflow models serve`` answers: status and JSON body (as its app builds them)."""
    try:
        response = scoring_server.invocations(body, content_type, served, served.metadata.get_input_schema())
    except MlflowException as error:
        return error.get_http_status_code(), json.loads(error.serialize_as_json())
    return response.status, json.loads(response.response)


def test_the_scoring_server_answers_bad_requests_400_with_the_message_and_no_stack_trace(served: PyFuncModel):
    good = {"dataframe_records": [{"history": ["i1"]}, {"history": ["zz"]}], "params": {"k": 2}}
    status, body = _invoke(served, json.dumps(good), "application/json")
    assert status == 200 and [row["fallback"] for row in body["predictions"]] == [None, POPULARITY]
    assert body["predictions"][1]["unknown_items"] == ["zz"]

    status, body = _invoke(served, json.dumps({**good, "params": {"k": -1}}), "application/json")
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in body
    # The server puts the request's data before the model's message; the model's line closes it.
    assert body["message"].splitlines()[-1] == f"Error: params.k must be a whole number from 1 to {MAX_K}, got -1"

    # Known limit, MLflow's and not the model's: for a list input the scoring server refuses any CSV before the
    # model is called (it cannot map an array column to a pandas dtype), with a traceback in the body. The
    # platform's own HTTP service must not answer so; the README tells clients to send JSON.
    status, body = _invoke(served, "history\ni1\n", "text/csv")
    assert status == 400 and body["error_code"] == "BAD_REQUEST" and "stack_trace" in body
    assert "Failed to get pandas types as some of the inputs types are not DataType" in body["message"]


def test_the_loaded_model_runs_torch_on_one_thread_unless_overridden(model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        mlflow.pyfunc.load_model(str(model_dir))
        assert torch.get_num_threads() == 1
        monkeypatch.setenv(TORCH_THREADS_ENV, "serving=2")
        mlflow.pyfunc.load_model(str(model_dir))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        ("nope", "the bundle cannot serve 'nope'; it serves sasrec, router_generative,"),
        ("router_fused", "the bundle cannot serve 'router_fused': it has no 'router_checkpoint' component (it has "),
    ],
)
def test_a_ranking_the_bundle_cannot_serve_is_refused_at_load_in_one_line(model_dir: Path, serving: str, message: str):
    """The override replaces the evaluation's choice before anything is built, and is checked then."""
    with pytest.raises(MlflowException) as caught:
        load_bundle(model_dir, serving)
    assert caught.value.message.startswith(message) and "\n" not in caught.value.message


def test_an_override_naming_the_evaluations_choice_serves_as_the_default_does(model_dir: Path):
    default, named = load_bundle(model_dir), load_bundle(model_dir, "sasrec")
    assert default.serving == named.serving == "sasrec"
    frame = pd.DataFrame({"history": [["i1", "i2"], ["i5"]]})
    assert default.predict(None, frame, {"k": 4}).equals(named.predict(None, frame, {"k": 4}))


def test_a_rollback_to_a_missing_version_names_the_versions_that_exist(
    tracking: Tracking, model_name: str, capsys: pytest.CaptureFixture
):
    _register(tracking, model_name, recall=0.10, seed=1)
    _register(tracking, model_name, recall=0.11, seed=2)
    expected = f"v99 does not exist in '{model_name}'; its versions: v1, v2"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        rollback(tracking.client, model_name, to_version=99)
    assert main(["rollback", "--to", "99", "--model", model_name, "--tracking-uri", tracking.uri]) == USAGE_ERROR
    assert capsys.readouterr().err == f"sid-platform rollback: rollback refused: {expected}\n"
