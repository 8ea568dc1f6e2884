"""The code location: the asset graph (assets, checks, jobs, resources) with the sensors and schedules; nothing
else lives here. The graph itself is built in ``automation/graph.py``, which in-process runs share.

Every process that loads this code location (the step processes of a deployed run) runs its steps with the
``training`` stage's torch threads (``sid_platform/threads.py``), not torch's one per core."""

from __future__ import annotations

from dagster import Definitions

from sid_platform.automation.graph import graph_definitions
from sid_platform.automation.schedules import all_schedules
from sid_platform.automation.sensors import all_sensors
from sid_platform.threads import use_threads

use_threads("training")

defs = Definitions.merge(graph_definitions(), Definitions(sensors=all_sensors, schedules=all_schedules))
