"""The promotion gate, the champion alias, and rollback: plain functions over an MLflow registry.

Serving reads the alias ``champion``. Moving it is one ``set_registered_model_alias`` call, a single
write in the registry, so a reader sees the old champion or the new one, never a mix; every tag a
decision writes is written before that move. A refused version keeps the alias ``challenger`` and its
reasons in its tags. The registered model's tag ``champion_history`` is the stack of champions
(oldest first): promotion pushes, rollback pops back to its target, and ``previous_champion`` names the
entry under the top, so ``rollback`` without a version knows where to go.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from sid_platform.policy import POLICY
from sid_platform.registry.bundle import log_bundle
from sid_platform.registry.tracking import Tracking

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous_champion"
HISTORY_TAG = "champion_history"
RECALL_TAG = "recall_at_10"
UTILIZATION_TAG = "min_codebook_utilization"
ROLE_TAG = "role"
GATE_TAG = "gate"
REASONS_TAG = "gate_reasons"
SINCE_TAG = "champion_since"  # set on every version that has ever been champion
TAG_VALUE_LIMIT = 5000


@dataclass(frozen=True)
class GatePolicy:
    """``recall_tolerance`` is relative (0.02: at most 2 % below the champion's Recall@10); defaults: ``POLICY``."""

    recall_tolerance: float = POLICY.recall_tolerance
    min_utilization: float = POLICY.min_codebook_utilization


@dataclass(frozen=True)
class Candidate:
    """What the gate looks at: the serving model's Recall@10 on the evaluation users, and the codebooks."""

    recall_at_10: float
    min_codebook_utilization: float
    failed_checks: tuple[str, ...] = ()
    serving_model: str = ""
    valid_recall_at_10: float | None = None  # the serving ranking on validation users
    baseline_valid_recall_at_10: float | None = None  # the same run's SASRec on validation users

    def tags(self) -> dict[str, str]:
        return {RECALL_TAG: repr(self.recall_at_10), UTILIZATION_TAG: repr(self.min_codebook_utilization)}


def gate(candidate: Candidate, champion_recall: float | None, policy: GatePolicy) -> tuple[bool, list[str]]:
    """Promote or not, and why not; pure, so every rule is tested without a registry."""
    reasons = []
    if candidate.failed_checks:
        reasons.append(f"blocking asset checks did not pass: {', '.join(candidate.failed_checks)}")
    if not candidate.min_codebook_utilization >= policy.min_utilization:  # NaN fails too
        reasons.append(
            f"codebook utilization {candidate.min_codebook_utilization:.1%} is below {policy.min_utilization:.0%}"
        )
    baseline, valid = candidate.baseline_valid_recall_at_10, candidate.valid_recall_at_10
    if baseline is not None and not (valid is not None and valid >= baseline):
        reasons.append(
            f"the serving ranking {candidate.serving_model or '?'} has validation Recall@10 {valid} below the same "
            f"run's SASRec ({baseline:.4f}): a baseline beats the model"
        )
    if champion_recall is not None:
        floor = champion_recall * (1 - policy.recall_tolerance)
        if not candidate.recall_at_10 >= floor:
            reasons.append(
                f"Recall@10 {candidate.recall_at_10:.4f} is below the champion's {champion_recall:.4f} "
                f"by more than the {policy.recall_tolerance:.0%} tolerance (floor {floor:.4f})"
            )
    return not reasons, reasons


@dataclass(frozen=True)
class Decision:
    version: int
    promoted: bool
    reasons: list[str]
    previous_champion: int | None
    summary: str


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    return alias_version(client, name, CHAMPION)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def champion_history(client: MlflowClient, name: str) -> list[int]:
    value = client.get_registered_model(name).tags.get(HISTORY_TAG, "")
    return [int(v) for v in value.split(",") if v]


def _write_history(client: MlflowClient, name: str, history: list[int]) -> None:
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(str(v) for v in history))
    if len(history) >= 2:
        client.set_registered_model_alias(name, PREVIOUS, str(history[-2]))
    elif PREVIOUS in client.get_registered_model(name).aliases:
        client.delete_registered_model_alias(name, PREVIOUS)


def _set_tags(client: MlflowClient, name: str, version: int, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value[:TAG_VALUE_LIMIT])


def decide(client: MlflowClient, name: str, version: int, candidate: Candidate, policy: GatePolicy) -> Decision:
    """Gate a registered version against the current champion; promote it or keep it as the challenger."""
    current = champion(client, name)
    champion_recall = float(current.tags[RECALL_TAG]) if current is not None and RECALL_TAG in current.tags else None
    promote, reasons = gate(candidate, champion_recall, policy)
    _set_tags(client, name, version, candidate.tags())
    if promote:
        summary = (
            "first champion"
            if champion_recall is None
            else f"Recall@10 {candidate.recall_at_10:.4f} vs champion v{current.version}'s {champion_recall:.4f}"
        )
        _set_tags(client, name, version, {GATE_TAG: "passed", REASONS_TAG: summary})
        set_champion(client, name, version, note=f"promoted: {summary}")
    else:
        summary = "; ".join(reasons)
        _set_tags(client, name, version, {GATE_TAG: "refused", REASONS_TAG: summary, ROLE_TAG: CHALLENGER})
        client.set_registered_model_alias(name, CHALLENGER, str(version))
    return Decision(version, promote, reasons, int(current.version) if current else None, summary)


def set_champion(client: MlflowClient, name: str, version: int, note: str, *, push: bool = True) -> None:
    """Tags first, then the single alias move that readers observe, then the bookkeeping of the history."""
    current = champion(client, name)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _set_tags(client, name, version, {ROLE_TAG: CHAMPION, SINCE_TAG: stamp, "champion_note": note})
    client.set_registered_model_alias(name, CHAMPION, str(version))
    if current is not None and int(current.version) != version:
        _set_tags(client, name, int(current.version), {ROLE_TAG: "retired", "retired_at": stamp})
    if push:
        history = champion_history(client, name)
        if not history or history[-1] != version:
            _write_history(client, name, [*history, version])


def rollback(client: MlflowClient, name: str, to_version: int | None = None) -> tuple[int, int]:
    """Move ``champion`` to ``to_version`` (any former champion), or back to the one before the current.

    Returns (from, to). Rolling back twice without a version walks two steps back.
    """
    current = champion(client, name)
    if current is None:
        raise ValueError(f"{name!r} has no champion to roll back from")
    history = champion_history(client, name)
    source = int(current.version)
    if to_version is None:
        earlier = [v for v in history[: _last_index(history, source)] if v != source]
        if not earlier:
            raise ValueError(f"v{source} is the first champion of {name!r}; there is nothing to roll back to")
        to_version = earlier[-1]
    if to_version == source:
        raise ValueError(f"v{source} is already the champion")
    if SINCE_TAG not in existing_version(client, name, to_version).tags:
        former = ", ".join(f"v{v}" for v in dict.fromkeys(history)) or "none"
        raise ValueError(f"v{to_version} was never champion of {name!r}; champions in the history: {former}")
    set_champion(client, name, to_version, note=f"rollback from v{source}", push=False)
    _set_tags(client, name, source, {ROLE_TAG: "rolled_back"})
    # Back to a champion still in the stack: cut the stack there. Forward to one a rollback had popped: push it.
    kept = history[: _last_index(history, to_version) + 1] if to_version in history else [*history, to_version]
    _write_history(client, name, kept)
    return source, to_version


def existing_version(client: MlflowClient, name: str, version: int) -> ModelVersion:
    """The registered version, or a ``ValueError`` naming the versions that exist (not MLflow's traceback)."""
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    shown = ", ".join(f"v{v}" for v in versions[-20:]) or "none"
    more = f" (the latest 20 of {len(versions)})" if len(versions) > 20 else ""
    raise ValueError(f"v{version} does not exist in {name!r}; its versions: {shown}{more}")


def _last_index(history: list[int], version: int) -> int:
    return len(history) - 1 - history[::-1].index(version) if version in history else len(history)


@dataclass(frozen=True)
class Release:
    """A registered bundle version and the gate's decision on it: what ``model_promotion`` returns."""

    registered_model: str
    version: int
    promoted: bool
    reasons: list[str]
    summary: str
    previous_champion: int | None
    recall_at_10: float
    min_codebook_utilization: float
    mlflow_run_id: str
    tracking_uri: str

    @property
    def outcome(self) -> str:
        return "promoted" if self.promoted else "refused"

    def as_dict(self) -> dict:
        """The asset's output; keys as the CLI, the sensors and the tests read them."""
        return {
            "registered_model": self.registered_model,
            "version": self.version,
            "promoted": self.promoted,
            "reasons": self.reasons,
            "summary": self.summary,
            "previous_champion": self.previous_champion,
            "recall@10": self.recall_at_10,
            "min_codebook_utilization": self.min_codebook_utilization,
            "mlflow_run_id": self.mlflow_run_id,
            "tracking_uri": self.tracking_uri,
        }


def release(
    tracking: Tracking,
    name: str,
    components: Mapping[str, Any],
    pinned: Mapping[str, Any],
    candidate: Candidate,
    policy: GatePolicy,
    *,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
) -> Release:
    """Register the bundle as a new version of ``name``, gate it, and record the outcome on its MLflow run."""
    version = log_bundle(tracking, name, components, pinned, run_name="model_promotion", metrics=metrics, tags=tags)
    decision = decide(tracking.client, name, int(version.version), candidate, policy)
    tracking.client.set_tag(version.run_id, "promotion", "promoted" if decision.promoted else "refused")
    tracking.client.set_tag(version.run_id, "gate_reasons", decision.summary[:TAG_VALUE_LIMIT])
    return Release(
        name,
        int(version.version),
        decision.promoted,
        decision.reasons,
        decision.summary,
        decision.previous_champion,
        candidate.recall_at_10,
        candidate.min_codebook_utilization,
        version.run_id,
        tracking.uri,
    )
