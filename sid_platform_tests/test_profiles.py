"""Every profile is a valid run config of the jobs that run it, so a renamed asset or field fails here."""

import pytest
from dagster import DagsterInvalidConfigError, validate_run_config

from sid_platform.automation.run import main_job_run_config
from sid_platform.definitions import defs
from sid_platform.policy import QuarantineLimits
from sid_platform.profiles import PROFILE_NAMES, PROFILES, Profile, profile, run_config
from sid_platform.retrieval.router import RouterConfig


@pytest.mark.parametrize("job", ["main_job", "retrain_job"])
@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_validates_against_the_job_schema(name: str, job: str):
    validate_run_config(defs.resolve_job_def(job), run_config(name))


def test_profiles_are_the_three_presets():
    assert PROFILE_NAMES == ("test", "default", "full")
    assert run_config("default") == {"ops": {}}  # the Dagster configs' defaults are the default profile
    assert run_config("test")["resources"] == {"dataset": {"config": {"source": "synthetic"}}}
    assert run_config("full")["ops"]["router_checkpoint"]["config"]["num_layers"] == 4
    with pytest.raises(ValueError, match="unknown profile"):
        profile("huge")


def test_only_changed_fields_are_emitted():
    assert run_config("test")["ops"]["codebooks"]["config"] == {
        "levels": 3,
        "codebook_size": 16,
        "epochs": 30,
        "batch_size": 128,
    }
    assert set(run_config("full")["ops"]["sasrec_model"]["config"]) == {"patience"}  # epochs=200 is the default


def test_a_knob_the_schema_does_not_know_is_rejected():
    # What the validation catches: a run config naming a field the asset's config no longer has.
    broken = run_config("test")
    broken["ops"]["router_checkpoint"]["config"]["n_prefixs"] = 4
    with pytest.raises(DagsterInvalidConfigError):
        validate_run_config(defs.resolve_job_def("main_job"), broken)
    # And a profile written with a field the core dataclass lacks fails where it is written.
    with pytest.raises(TypeError):
        Profile(router_checkpoint=RouterConfig(n_prefixs=4))  # type: ignore[call-arg]


def test_quarantine_limits_in_a_profile_configure_both_ingest_checks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(PROFILES, "strict", Profile(quarantine_limits=QuarantineLimits(max_quarantined_rows=0)))
    limits = {"config": {"max_quarantined_rows": 0}}
    checks = ("raw_interactions_raw_interactions_expectations", "item_catalog_item_catalog_expectations")
    assert run_config("strict")["ops"] == dict.fromkeys(checks, limits)
    validate_run_config(defs.resolve_job_def("main_job"), run_config("strict"))
    # A partial run keeps them: the checks of the selected assets run with the profile's limits.
    config, _ = main_job_run_config(
        "strict", {"resources": {"dataset": {"config": {"source": "synthetic"}}}}, ["raw_interactions"]
    )
    assert {op: config["ops"][op] for op in checks} == dict.fromkeys(checks, limits)
