"""The servable recommender as ONE MLflow model: every component as a file, plus the config that made them.

A bundle is a mapping ``name → component``; each component becomes one file in the formats of
``sid_platform/artifacts.py`` (a polars frame → Parquet, a model checkpoint → its own safetensors file, the ANN
index and other records → npz with a typed header, JSON values → JSON; bytes → ``.bin``, a path → copied as
is), never a pickle, and one MLflow pyfunc artifact. Beside them lies ``config.json``: the full Dagster run
config, the data fingerprint, the evaluation figures and each file's SHA-256, so a registered version says
exactly what produced it (and ``pinned_config`` reads it back for a rollback or a rerun). Loading checks every
component's SHA-256 against ``config.json`` before reading it, so a file altered after registration is refused.
Adding a component is one more entry in the mapping.

MLflow's pyfunc flavor itself stores the model object with cloudpickle (``python_model.pkl``) and unpickles it
in ``mlflow.pyfunc.load_model``; that is unavoidable for a pyfunc ``PythonModel`` (the alternative,
models-from-code, executes a stored Python file instead). Here that pickle holds only classes referenced by
name (``ServableRecommender`` of this package; MLflow's ``_TypeHints`` and ``pandas.DataFrame`` for
``predict``'s type hints) and no data: every component is read by ``load_context`` through the codecs above.
``load_bundle`` builds the recommender from a downloaded model folder without MLflow's loader, so nothing
stored is unpickled at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow.pyfunc
import pandas as pd
import polars as pl
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from sid_platform.artifacts import SUFFIXES, decode, encode
from sid_platform.data.files import sha256_of
from sid_platform.registry.tracking import Tracking, log_run
from sid_platform.serving import InvalidRequest, ServedModel, parse_histories, parse_k
from sid_platform.threads import use_threads

_LOG = logging.getLogger(__name__)
CONFIG_ARTIFACT = "config"
CONFIG_FILE = "config.json"
MODEL_ARTIFACT_PATH = "model"
ARTIFACTS_FOLDER = "artifacts"  # where MLflow puts a pyfunc model's artifacts inside its folder
SERVING_CONFIG = "serving"  # model_config key: a ranking (``sid_platform.serving.RANKERS``) to serve instead
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(Array(DataType.string), "history")]),
    outputs=Schema(
        [
            ColSpec(Array(DataType.string), "items"),
            ColSpec(Array(DataType.string), "sids"),
            ColSpec(DataType.string, "fallback", required=False),  # null, or which fallback answered the row
            ColSpec(Array(DataType.string), "unknown_items"),  # the row's ids outside the catalog
        ]
    ),
    params=ParamSchema([ParamSpec("k", DataType.long, 10)]),
)


class BundleIntegrityError(ValueError):
    """A bundle component that does not match the SHA-256 its ``config.json`` pins (or that it does not pin)."""


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def write_component(name: str, value: Any, directory: Path) -> Path:
    """One component → one file in ``directory``; the suffix says how ``read_components`` reads it back.

    ``TypeError`` for a value with no stored format (nothing is pickled).
    """
    if isinstance(value, bytes):
        path = directory / f"{name}.bin"
        path.write_bytes(value)
    elif isinstance(value, Path):
        path = directory / f"{name}{''.join(value.suffixes)}"
        shutil.copyfile(value, path)
    else:
        try:
            suffix, data = encode(value)
        except TypeError as error:
            raise TypeError(f"bundle component {name!r} cannot be stored: {error}") from error
        path = directory / f"{name}{suffix}"
        path.write_bytes(data)
    return path


def read_components(config: Mapping[str, Any], artifacts: Mapping[str, str]) -> dict[str, Any]:
    """Component name → value, each file's SHA-256 checked against the one ``config.json`` pins BEFORE it is read.

    The hash is taken of the very bytes that are then decoded, so a file altered or swapped after registration
    is never parsed; a file the config does not pin, or a pinned one that is missing, is refused the same way.
    """
    pinned: Mapping[str, Any] = config.get("components", {})
    files = {name: Path(location) for name, location in artifacts.items() if name != CONFIG_ARTIFACT}
    missing = sorted(set(pinned) - set(files))
    if missing:
        raise BundleIntegrityError(f"components {', '.join(missing)} are pinned in {CONFIG_FILE} but not in the bundle")
    components = {}
    for name, path in files.items():
        entry = pinned.get(name)
        if not isinstance(entry, Mapping) or entry.get("file") != path.name:
            raise BundleIntegrityError(f"{path.name}: not pinned in {CONFIG_FILE} as component {name!r}; refusing it")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.get("sha256"):
            raise BundleIntegrityError(
                f"{path.name}: its SHA-256 {digest[:16]}… is not the {str(entry.get('sha256'))[:16]}… {CONFIG_FILE} "
                "pinned at registration (altered or corrupted since); refusing to load it"
            )
        # Formats the bundle does not know (.bin, copied files) stay paths; their consumer opens them.
        components[name] = decode(path.suffix, data, path.name) if path.suffix in SUFFIXES else path
    return components


def frame_fingerprint(*frames: pl.DataFrame) -> str:
    """A content hash of tables (row hashes in order, and the column names); same data, same fingerprint."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(",".join(frame.columns).encode())
        digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:16]


class ServableRecommender(mlflow.pyfunc.PythonModel):
    """Histories of item ids in, top-k item ids (and their Semantic IDs) out, ranked by the serving model.

    Input: a frame with a ``history`` column (lists of item ids, oldest first); ``params={"k": 10}`` (1 to
    ``sid_platform.serving.MAX_K``). Output per row: ``items``, ``sids``, ``fallback`` (null when the model
    ranked the history; ``"popularity"`` for an empty or all-unknown one) and ``unknown_items`` (ids outside
    the catalog). The serving model is the one the evaluation named (``config["evaluation"]["model"]``), unless
    the loader names another (``load_context``).
    The instance holds no data until ``load_context``, so MLflow's pickle of it is a reference to this class.
    """

    def load_context(self, context: Any) -> None:
        """Read ``config.json``, check every component's SHA-256 against it, then read the components.

        The ranking served is the evaluation's choice unless ``context.model_config["serving"]`` names another
        (``load_bundle(..., serving=)``; MLflow's own loader passes only the keys saved with the model, so none):
        a canary, or a comparison of two rankings of one bundle. Either way the ranking is opened here (every
        component it reads), so one the bundle cannot serve (an unknown name, a component it lacks) is refused
        at load in one line, never at the first request.
        """
        use_threads("serving")  # one intra-op thread: a request is a small batch (see sid_platform/threads.py)
        self.config = json.loads(Path(context.artifacts[CONFIG_ARTIFACT]).read_text())
        self.components = read_components(self.config, context.artifacts)
        override = (getattr(context, "model_config", None) or {}).get(SERVING_CONFIG)
        self.serving = override or self.config.get("evaluation", {}).get("model", "sasrec")
        try:
            self.served = ServedModel.of(self.components, self.serving)  # opens the ranking: reads its components
        except KeyError as error:
            missing = error.args[0] if error.args else None
            if not isinstance(missing, str) or missing in self.components:
                raise
            raise MlflowException(
                f"the bundle cannot serve {self.serving!r}: it has no {missing!r} component "
                f"(it has {', '.join(sorted(self.components))})"
            ) from None
        except ValueError as error:  # a model this code cannot serve: refuse to load, not to answer
            raise MlflowException(str(error)) from error

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Rank each history; a mistake in the request is a one-line error and never a traceback.

        MLflow's scoring server answers an ``MlflowException`` with its message and error code only (HTTP 400
        for INVALID_PARAMETER_VALUE), but any other exception with the traceback in the body: so a bad request
        raises INVALID_PARAMETER_VALUE with the field named, and an unexpected failure is logged here, traceback
        and all, and answered INTERNAL_ERROR (HTTP 500) in one line.
        """
        try:
            k = parse_k(params)
            histories = parse_histories(model_input)
            return self.served.answer(histories, k)
        except InvalidRequest as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        except Exception as error:
            _LOG.exception("predict failed on a request of %s rows", getattr(model_input, "shape", ("?",))[0])
            message = f"the model failed to rank this request ({type(error).__name__}); the server log has the details"
            raise MlflowException(message, error_code=INTERNAL_ERROR) from error


def _save_pyfunc(model_dir: Path, artifacts: dict[str, str], requirements: list[str]) -> None:
    """``save_model`` without its notices: the class is importable (cloudpickle stores a reference to it, and the
    instance holds no data), and the signature is given, so neither the pickling warning nor "no input example"
    applies. The components are artifacts in their own formats, never in that pickle."""
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(
                model_dir,
                python_model=ServableRecommender(),
                artifacts=artifacts,
                signature=SIGNATURE,
                pip_requirements=requirements,  # explicit: inferring them would load the model in a subprocess
            )
    finally:
        pyfunc_logger.setLevel(level)


def log_bundle(
    tracking: Tracking,
    registered_model: str,
    components: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    run_name: str = "servable_bundle",
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Log the components and their pinned config as one pyfunc model in a new run, and register it."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = Path(tmp, "parts")
        parts.mkdir()
        files = {name: write_component(name, value, parts) for name, value in components.items()}
        pinned = {
            **config,
            "components": {name: {"file": p.name, "sha256": sha256_of(p)} for name, p in files.items()},
            "packages": {name: _package_version(name) for name in ("sid-platform", "torch", "polars", "mlflow")},
        }
        config_path = parts / CONFIG_FILE
        config_path.write_text(json.dumps(pinned, indent=2, sort_keys=True, default=str))
        model_dir = Path(tmp, MODEL_ARTIFACT_PATH)
        _save_pyfunc(
            model_dir,
            {CONFIG_ARTIFACT: str(config_path), **{name: str(p) for name, p in files.items()}},
            [f"{n}=={v}" for n, v in pinned["packages"].items() if v],
        )
        run_id = log_run(
            tracking,
            run_name,
            params={"components": ",".join(sorted(files))},
            metrics=metrics,
            files={MODEL_ARTIFACT_PATH: model_dir},
            tags=tags,
        )
    client = tracking.client
    try:
        client.create_registered_model(
            registered_model, description="The servable Semantic-ID recommender; alias 'champion' is served."
        )
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT_PATH}"
    return client.create_model_version(registered_model, source, run_id=run_id, tags=dict(tags or {}))


def download_version(tracking: Tracking, version: ModelVersion, destination: Path) -> Path:
    """The version's model folder, downloaded; ``load_bundle`` (no pickle) or ``mlflow.pyfunc.load_model`` (which
    unpickles MLflow's ``python_model.pkl``) on it gives the recommender."""
    return Path(tracking.client.download_artifacts(version.run_id, MODEL_ARTIFACT_PATH, str(destination)))


def pinned_config(tracking: Tracking, version: ModelVersion) -> dict:
    """The ``config.json`` a version was registered with: run config, data fingerprint, component hashes."""
    with tempfile.TemporaryDirectory() as tmp:
        artifact = f"{MODEL_ARTIFACT_PATH}/{ARTIFACTS_FOLDER}/{CONFIG_FILE}"
        path = tracking.client.download_artifacts(version.run_id, artifact, tmp)
        return json.loads(Path(path).read_text())


def load_bundle(model_dir: str | Path, serving: str | None = None) -> ServableRecommender:
    """The recommender from a downloaded model folder (``download_version``) without MLflow's loader.

    Reads ``config.json`` and the components it pins (hash-checked), and never opens ``python_model.pkl``:
    the way to load a bundle from a registry one does not fully trust. ``serving`` names the ranking to serve
    (default: the one the evaluation chose); one the bundle cannot serve is an ``MlflowException``.
    """
    folder = Path(model_dir) / ARTIFACTS_FOLDER
    config_path = folder / CONFIG_FILE
    pinned = json.loads(config_path.read_text()).get("components", {})
    artifacts = {CONFIG_ARTIFACT: str(config_path)}
    for name, entry in pinned.items():
        file = str(entry.get("file", "")) if isinstance(entry, Mapping) else ""
        if not file or Path(file).name != file:  # a bare file name: nothing outside the artifacts folder
            raise BundleIntegrityError(f"{CONFIG_FILE} pins component {name!r} as {file!r}, not a file name")
        artifacts[name] = str(folder / file)
    model = ServableRecommender()
    model.load_context(SimpleNamespace(artifacts=artifacts, model_config={SERVING_CONFIG: serving} if serving else {}))
    return model
