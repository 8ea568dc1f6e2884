"""One home per knob: every default and description of a quality threshold comes from ``POLICY``."""

from pathlib import Path

from sid_platform.assets.ingest import QuarantineCheckConfig, raw_interactions_expectations
from sid_platform.assets.semantic_ids import UtilizationCheckConfig, codebook_utilization
from sid_platform.automation.sensors import codebook_utilization_sensor, recall_drop_sensor
from sid_platform.evaluation.harness import Protocol
from sid_platform.evaluation.metrics import DEFAULT_KS
from sid_platform.policy import POLICY, QuarantineLimits
from sid_platform.registry import GatePolicy
from sid_platform.resources import EvaluationProtocol, MlflowResource

README = Path(__file__).resolve().parent.parent / "README.md"


def _percent(share: float) -> str:
    return f"{share:.0%}"


def test_defaults_come_from_the_policy():
    assert (
        GatePolicy()
        == MlflowResource().policy()
        == GatePolicy(POLICY.recall_tolerance, POLICY.min_codebook_utilization)
    )
    assert MlflowResource().recall_drop_alert == POLICY.recall_drop_alert
    assert UtilizationCheckConfig().min_utilization == POLICY.min_codebook_utilization
    assert QuarantineCheckConfig().core() == QuarantineLimits()
    assert QuarantineLimits().max_quarantined_rows == POLICY.max_quarantined_rows
    assert QuarantineLimits().max_quarantined_fraction == POLICY.max_quarantined_fraction
    assert tuple(EvaluationProtocol().ks) == Protocol().ks == DEFAULT_KS == POLICY.ks


def test_descriptions_are_formatted_from_the_policy():
    [utilization_spec] = codebook_utilization.check_specs
    assert _percent(POLICY.min_codebook_utilization) in (utilization_spec.description or "")
    [quarantine_spec] = raw_interactions_expectations.check_specs
    assert f"{POLICY.max_quarantined_rows} rows and more than {_percent(POLICY.max_quarantined_fraction)}" in (
        quarantine_spec.description or ""
    )
    assert _percent(POLICY.recall_drop_alert) in (recall_drop_sensor.description or "")
    assert _percent(POLICY.min_codebook_utilization) in (codebook_utilization_sensor.description or "")


def test_the_readme_states_the_policy():
    text = " ".join(README.read_text().split())
    spaced = {name: f"{getattr(POLICY, name) * 100:g} %" for name in vars(POLICY) if name != "ks"}
    assert f"more than {POLICY.max_quarantined_rows} rows and more than {spaced['max_quarantined_fraction']} of" in text
    assert f"fewer than {spaced['min_codebook_utilization']} of its codes" in text
    assert f"at least {spaced['min_codebook_utilization']} (`min_utilization`)" in text
    assert f"at most {spaced['recall_tolerance']} (relative, `recall_tolerance`)" in text
    assert f"more than {spaced['recall_drop_alert']} (relative, `recall_drop_alert`)" in text
    assert f"`min_codebook_utilization` is below {spaced['min_codebook_utilization']}" in text
    assert "Recall@" + "/".join(str(k) for k in POLICY.ks) in text


def test_the_quarantine_limit_is_absolute_or_relative():
    limits = QuarantineLimits(max_quarantined_rows=10, max_quarantined_fraction=0.05)
    assert not limits.exceeded(1, 15)  # 7 %, but one row
    assert not limits.exceeded(10, 100)  # 10 %, but ten rows
    assert not limits.exceeded(50_000, 1_000_000)  # many rows, but 5 %
    assert limits.exceeded(60_000, 1_000_000) and limits.exceeded(11, 100)
    assert QuarantineLimits(max_quarantined_rows=0).exceeded(1, 15)
