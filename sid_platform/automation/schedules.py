"""The weekly retrain: ``retrain_job`` on a cron from ``$SID_RETRAIN_CRON`` (default Mondays 03:00 UTC).

Default status RUNNING, like the sensors: a deployment retrains weekly without anyone switching it on; set
``SID_RETRAIN_SCHEDULE=stopped`` where a weekly full retrain is unwanted (a laptop running ``dagster dev``).
"""

import os

from dagster import DefaultScheduleStatus, ScheduleDefinition

from sid_platform.automation.jobs import retrain_job
from sid_platform.automation.sensors import REASON_TAG, TRIGGER_TAG, retrain_run_config

CRON_ENV = "SID_RETRAIN_CRON"
STATUS_ENV = "SID_RETRAIN_SCHEDULE"
DEFAULT_CRON = "0 3 * * 1"


def weekly_retrain_schedule() -> ScheduleDefinition:
    """Built from the environment when the code location loads; the run config is the ``$SID_PROFILE`` one."""
    cron = os.environ.get(CRON_ENV, DEFAULT_CRON)
    status = os.environ.get(STATUS_ENV, "running").lower()
    if status not in ("running", "stopped"):
        raise ValueError(f"{STATUS_ENV}={status!r}: expected running or stopped")
    return ScheduleDefinition(
        name="weekly_retrain",
        job=retrain_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        run_config_fn=lambda _context: retrain_run_config(),
        tags={REASON_TAG: f"weekly schedule ({cron})", TRIGGER_TAG: "weekly_retrain"},
        default_status=DefaultScheduleStatus.RUNNING if status == "running" else DefaultScheduleStatus.STOPPED,
        description=f"Retrain everything downstream of the data on the cron in ${CRON_ENV} (now {cron!r}, UTC).",
    )


weekly_retrain = weekly_retrain_schedule()
all_schedules = [weekly_retrain]
