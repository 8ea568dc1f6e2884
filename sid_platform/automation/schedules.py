"""The weekly retrain: ``retrain_job`` on a cron from ``$SID_RETRAIN_CRON`` (default Mondays 03:00 UTC).

Default status RUNNING, like the sensors: a deployment retrains weekly without anyone switching it on; set
``SID_RETRAIN_SCHEDULE=stopped`` where a weekly full retrain is unwanted (a laptop running ``dagster dev``).
"""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from sid_platform.assets.reporting import PROFILE_TAG
from sid_platform.automation.jobs import retrain_job
from sid_platform.automation.sensors import REASON_TAG, TRIGGER_TAG, retrain_run_config
from sid_platform.settings import RETRAIN_CRON_ENV, profile_name, retrain_cron, retrain_schedule_status


def weekly_retrain_schedule() -> ScheduleDefinition:
    """Built from the environment when the code location loads; the run config is the ``$SID_PROFILE`` one."""
    cron, status = retrain_cron(), retrain_schedule_status()
    return ScheduleDefinition(
        name="weekly_retrain",
        job=retrain_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        run_config_fn=lambda _context: retrain_run_config(),
        tags={REASON_TAG: f"weekly schedule ({cron})", TRIGGER_TAG: "weekly_retrain", PROFILE_TAG: profile_name()},
        default_status=DefaultScheduleStatus.RUNNING if status == "running" else DefaultScheduleStatus.STOPPED,
        description=f"Retrain everything downstream of the data on the cron in ${RETRAIN_CRON_ENV} (now {cron!r}, UTC).",
    )


weekly_retrain = weekly_retrain_schedule()
all_schedules = [weekly_retrain]
