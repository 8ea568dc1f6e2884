"""``Progress``: when it logs (ten seconds in, then at most once a minute, and at the end) and what a line says."""

import pytest

from sid_platform import progress as progress_module
from sid_platform.progress import Progress, duration


class FakeClock:
    """A clock the test moves by hand; ``monotonic`` stands in for the ``time`` module's."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def tracked(total: int, **kwargs) -> tuple[Progress, FakeClock, list[str]]:
    clock, lines = FakeClock(), []
    return Progress("phase", total, lines.append, unit="users", clock=clock, **kwargs), clock, lines


def test_lines_come_ten_seconds_in_then_at_most_once_a_minute_and_at_the_end():
    progress, clock, lines = tracked(1000)
    logged_at = []
    for done in range(1, 1001):
        clock.now += 0.5  # 500 s in all, one update every half second
        before = len(lines)
        progress.update(done)
        if len(lines) > before:
            logged_at.append(clock.now - 1000)
    assert logged_at[0] == 10.0  # the first line, with an early rate and estimate
    gaps = [b - a for a, b in zip(logged_at, logged_at[1:-1], strict=False)]
    assert all(gap >= 60 for gap in gaps) and len(lines) == len(logged_at)
    assert logged_at[-1] == 500.0 and lines[-1].startswith("phase: 1000/1000 users") and lines[-1].endswith("done")
    assert len(lines) == 2 + (500 - 10) // 60  # first, one a minute, and the final line


def test_a_short_phase_logs_only_its_final_line_and_only_once():
    progress, clock, lines = tracked(3)
    for done in (1, 2, 3, 3):
        clock.now += 1
        progress.update(done)
    assert lines == ["phase: 3/3 users, 1.0 users/s, 3s elapsed, done"]


def test_the_rate_and_the_time_left_are_the_pace_so_far():
    progress, clock, lines = tracked(100)
    clock.now += 20
    progress.update(10)  # 10 users in 20 s: 0.5 users/s, 90 left → 180 s
    assert progress.rate() == pytest.approx(0.5) and progress.eta() == pytest.approx(180)
    assert lines == ["phase: 10/100 users, 2.0 s/user, 20s elapsed, ETA 3m00s"]
    progress.update(40, "a detail", force=True)  # forced: logs although a minute has not passed
    assert lines[-1] == "phase: 40/100 users, 2.0 users/s, 20s elapsed, ETA 30s; a detail"


def test_a_resumed_count_and_an_upper_bound():
    progress, clock, lines = tracked(50, done=20, at_most=True)  # 20 epochs done by an earlier process
    clock.now += 30
    progress.update(23)  # 3 units in 30 s: 10 s each, 27 left
    assert progress.eta() == pytest.approx(270)
    assert lines == ["phase: 23/50 users, 10.0 s/user, 30s elapsed, ETA at most 4m30s"]


def test_without_a_log_it_only_counts_and_the_total_can_change():
    progress = Progress("quiet", 10, None, clock=FakeClock())
    progress.update(4, total=8)
    assert (progress.done, progress.total) == (4, 8)
    progress.tick(8, 8)
    assert progress.eta() == 0.0


def test_a_shifted_callback_counts_a_later_part_of_the_work():
    progress, clock, lines = tracked(10)
    progress.shifted(6)(4)
    assert progress.done == 10 and lines[-1].startswith("phase: 10/10 users")


def test_the_default_clock_is_the_time_modules_so_tests_can_swap_it(monkeypatch: pytest.MonkeyPatch):
    clock, lines = FakeClock(), []
    monkeypatch.setattr(progress_module, "time", clock)
    progress = Progress("swapped", 2, lines.append)
    clock.now += 90
    progress.update(1)
    assert lines == ["swapped: 1/2, 90.0 s/unit, 1m30s elapsed, ETA 1m30s"]


def test_durations_read_short():
    assert [duration(s) for s in (0, 42.4, 185, 3720, -3)] == ["0s", "42s", "3m05s", "1h02m", "0s"]
