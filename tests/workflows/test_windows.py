"""Deployment windows and blackouts without a server: the spec keys, the decision (a pure function
of the windows, the blackouts, the clock and the zone data) and the promote rules at a window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from workflows.carried import RolloutState, derive_phase
from workflows.messages import MESSAGES
from workflows.spec import SpecError, validate_spec
from workflows.state import RolloutStatus, WaitingFor
from workflows.windows import Blackout, DeploymentWindow, WindowDecision, window_decision

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]
OFFICE = DeploymentWindow(days=WEEKDAYS, start="09:00", end="16:00", timezone="Europe/Berlin")
FREEZE = Blackout(
    start=datetime.fromisoformat("2026-12-20T00:00:00+01:00"),
    end=datetime.fromisoformat("2027-01-04T00:00:00+01:00"),
    reason="year-end freeze",
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def decide(
    now: datetime, windows: list[DeploymentWindow], blackouts: Sequence[Blackout] = ()
) -> WindowDecision:
    return window_decision(windows, blackouts, now, ZoneInfo)


def window(days: list[str], start: str, end: str, timezone: str = "Europe/Berlin") -> DeploymentWindow:
    return DeploymentWindow(days=days, start=start, end=end, timezone=timezone)


def blackout(start: str, end: str, reason: str = "") -> Blackout:
    return Blackout(start=datetime.fromisoformat(start), end=datetime.fromisoformat(end), reason=reason)


# -- the decision ---------------------------------------------------------------------------


def test_friday_evening_waits_for_monday_morning() -> None:
    decision = decide(utc(2026, 12, 4, 16), [OFFICE])  # Fri 17:00 CET
    assert decision == WindowDecision(
        open=False,
        until=utc(2026, 12, 7, 8),
        reason="outside deployment windows (Mon-Fri 09:00-16:00 Europe/Berlin); "
        "next opening Mon 2026-12-07 09:00 CET",
    )


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        (utc(2026, 12, 7, 7, 59, 59), False),  # Mon 08:59:59 CET
        (utc(2026, 12, 7, 8), True),  # 09:00 sharp: open
        (utc(2026, 12, 7, 14, 59), True),
        (utc(2026, 12, 7, 15), False),  # 16:00 sharp: closed (end excluded)
        (utc(2026, 12, 5, 10), False),  # Saturday
    ],
)
def test_a_window_is_open_from_start_up_to_end(now: datetime, is_open: bool) -> None:
    assert decide(now, [OFFICE]).open is is_open


def test_inside_a_window_says_which() -> None:
    decision = decide(utc(2026, 12, 8, 10), [OFFICE])
    assert decision == WindowDecision(
        open=True, reason="inside deployment window Mon-Fri 09:00-16:00 Europe/Berlin"
    )


def test_spring_forward_opens_at_nine_local_which_is_seven_utc() -> None:
    decision = decide(utc(2027, 3, 27, 11), [OFFICE])  # Sat 12:00 CET; clocks change Sunday
    assert decision.until == utc(2027, 3, 29, 7)  # Mon 09:00 CEST
    assert decision.reason.endswith("next opening Mon 2027-03-29 09:00 CEST")


def test_fall_back_opens_at_nine_local_which_is_eight_utc() -> None:
    decision = decide(utc(2026, 10, 24, 10), [OFFICE])  # Sat 12:00 CEST; clocks change Sunday
    assert decision.until == utc(2026, 10, 26, 8)  # Mon 09:00 CET
    assert decision.reason.endswith("next opening Mon 2026-10-26 09:00 CET")


def test_new_york_changes_on_another_weekend_than_berlin() -> None:
    ny = window(["Mon"], "09:00", "10:00", "America/New_York")
    assert decide(utc(2027, 3, 13, 12), [ny]).until == utc(2027, 3, 15, 13)  # EDT since Sunday
    assert decide(utc(2027, 3, 6, 12), [ny]).until == utc(2027, 3, 8, 14)  # EST


def test_a_start_the_clocks_skip_opens_when_they_jump() -> None:
    skipped = window(["Sun"], "02:30", "04:00")  # 2027-03-28: 02:00 CET jumps to 03:00 CEST
    decision = decide(utc(2027, 3, 27, 12), [skipped])
    assert decision.until == utc(2027, 3, 28, 1)  # 03:00 CEST, the moment of the jump
    assert decision.reason.endswith("next opening Sun 2027-03-28 03:00 CEST")
    assert decide(utc(2027, 3, 28, 1, 30), [skipped]).open  # 03:30 CEST
    assert not decide(utc(2027, 3, 28, 2), [skipped]).open  # 04:00 CEST


def test_a_window_inside_the_skipped_hour_opens_the_next_week() -> None:
    skipped = window(["Sun"], "02:10", "02:50")
    assert decide(utc(2027, 3, 27, 12), [skipped]).until == utc(2027, 4, 4, 0, 10)  # 02:10 CEST


def test_a_repeated_time_means_its_first_pass() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:00-03:00 passes twice.
    repeated = window(["Sun"], "02:30", "03:30")
    decision = decide(utc(2026, 10, 24, 12), [repeated])
    assert decision.until == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first pass
    assert decision.reason.endswith("next opening Sun 2026-10-25 02:30 CEST")
    assert decide(utc(2026, 10, 25, 1, 15), [repeated]).open  # 02:15 CET, the second pass
    assert decide(utc(2026, 10, 25, 2, 29), [repeated]).open  # 03:29 CET
    assert not decide(utc(2026, 10, 25, 2, 30), [repeated]).open  # 03:30 CET: closed


def test_a_whole_day_window_lasts_25_hours_when_the_clocks_fall_back() -> None:
    sunday = window(["Sun"], "00:00", "24:00")
    assert decide(utc(2026, 10, 24, 21, 59), [sunday]).until == utc(2026, 10, 24, 22)  # 00:00 CEST
    assert decide(utc(2026, 10, 25, 22, 59), [sunday]).open  # 23:59 CET
    assert not decide(utc(2026, 10, 25, 23), [sunday]).open  # Monday 00:00 CET


def test_lord_howe_half_hour_change() -> None:
    # Australia/Lord_Howe moves by 30 minutes: 2026-10-04 02:00 (+10:30) jumps to 02:30 (+11).
    lord_howe = window(["Sun"], "02:00", "03:00", "Australia/Lord_Howe")
    decision = decide(utc(2026, 10, 1), [lord_howe])
    assert decision.until == utc(2026, 10, 3, 15, 30)  # the jump, reading 02:30 +11
    assert decision.reason.endswith("next opening Sun 2026-10-04 02:30 +11")
    assert not decide(utc(2026, 10, 3, 16), [lord_howe]).open  # 03:00 +11: closed
    # 2027-04-04 02:00 (+11) falls back to 01:30 (+10:30): 01:30-02:00 passes twice.
    back = window(["Sun"], "01:45", "02:15", "Australia/Lord_Howe")
    assert decide(utc(2027, 4, 1), [back]).until == utc(2027, 4, 3, 14, 45)  # 01:45 +11, first pass
    assert decide(utc(2027, 4, 3, 15, 30), [back]).open  # 02:00 +10:30
    assert not decide(utc(2027, 4, 3, 15, 45), [back]).open  # 02:15 +10:30


def test_an_overnight_window_is_two_windows() -> None:
    night = [window(["Mon"], "22:00", "24:00"), window(["Tue"], "00:00", "06:00")]
    assert decide(utc(2026, 12, 7, 22), night).open  # Mon 23:00 CET
    assert decide(utc(2026, 12, 8, 4, 59), night).open  # Tue 05:59 CET
    closed = decide(utc(2026, 12, 8, 5), night)  # Tue 06:00 CET
    assert closed.until == utc(2026, 12, 14, 21)
    assert "(Mon 22:00-24:00 Europe/Berlin, Tue 00:00-06:00 Europe/Berlin)" in closed.reason


def test_the_earliest_of_windows_in_two_zones_opens() -> None:
    tokyo = window(["Mon"], "09:00", "10:00", "Asia/Tokyo")
    decision = decide(utc(2026, 12, 4, 16), [OFFICE, tokyo])
    assert decision.until == utc(2026, 12, 7, 0)  # Mon 09:00 JST is Sun 24:00 UTC
    assert decision.reason.endswith("next opening Mon 2026-12-07 09:00 JST")


def test_a_blackout_holds_until_the_next_window_after_it() -> None:
    decision = decide(utc(2026, 12, 21, 10), [OFFICE], [FREEZE])
    assert decision == WindowDecision(
        open=False,
        until=utc(2027, 1, 4, 8),
        reason="blackout: year-end freeze until 2027-01-04T00:00+01:00; "
        "next opening Mon 2027-01-04 09:00 CET",
    )


def test_a_blackout_alone_holds_until_it_ends() -> None:
    decision = decide(utc(2026, 12, 21, 10), [], [FREEZE])
    assert decision == WindowDecision(
        open=False, until=utc(2027, 1, 3, 23), reason="blackout: year-end freeze until 2027-01-04T00:00+01:00"
    )
    assert decide(utc(2027, 1, 3, 23), [], [FREEZE]).open  # its end is not in it
    assert decide(utc(2026, 12, 19, 22, 59), [], [FREEZE]).open


def test_a_blackout_ending_inside_a_window_opens_at_its_end() -> None:
    lunch = blackout("2026-12-08T11:00:00+01:00", "2026-12-08T13:30:00+01:00", "db migration")
    decision = decide(utc(2026, 12, 8, 11), [OFFICE], [lunch])
    assert decision.until == utc(2026, 12, 8, 12, 30)
    assert decision.reason == "blackout: db migration until 2026-12-08T13:30+01:00"


def test_touching_and_overlapping_blackouts_hold_as_one() -> None:
    first = blackout("2026-12-08T10:00:00Z", "2026-12-08T12:00:00Z", "one")
    second = blackout("2026-12-08T12:00:00Z", "2026-12-08T14:00:00Z", "two")
    third = blackout("2026-12-08T13:00:00Z", "2026-12-09T09:00:00Z", "three")
    decision = decide(utc(2026, 12, 8, 11), [OFFICE], [first, second, third])
    assert decision.until == utc(2026, 12, 9, 9)
    assert decision.reason.startswith("blackout: one until 2026-12-08T12:00+00:00; next opening Wed")


def test_a_long_blackout_is_searched_past() -> None:
    quarter = blackout("2026-12-01T00:00:00Z", "2027-03-03T12:00:00Z", "migration")  # a Wednesday
    assert decide(utc(2026, 12, 2), [window(["Mon"], "09:00", "10:00")], [quarter]).until == utc(
        2027, 3, 8, 8
    )


def test_a_blackout_without_end_has_no_opening_ahead() -> None:
    forever = blackout("2026-01-01T00:00:00Z", "9999-12-31T23:59:00Z", "forever")
    decision = decide(utc(2026, 12, 8, 10), [OFFICE], [forever])
    assert decision.open is False and decision.until is None
    assert decision.reason.endswith("; no opening ahead")


def test_nothing_configured_is_always_open() -> None:
    assert decide(utc(2026, 12, 5, 3), []).open


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(datetime(2026, 12, 5), [OFFICE])


def test_days_are_described_as_ranges() -> None:
    assert window(["Sun", "Fri", "Sat", "Mon", "Wed"], "09:00", "10:00").describe() == (
        "Mon,Wed,Fri-Sun 09:00-10:00 Europe/Berlin"
    )


def test_decisions_through_a_year_are_consistent() -> None:
    """Property: the answer is open, or an opening in the future at which the answer is open."""
    windows = [OFFICE, window(["Sat"], "02:30", "03:15"), window(["Sun"], "23:00", "24:00", "Asia/Kolkata")]
    moment = utc(2026, 12, 5)
    for _ in range(0, 24 * 366, 29):
        decision = decide(moment, windows, [FREEZE])
        if not decision.open:
            assert decision.until is not None and decision.until > moment
            assert decide(decision.until, windows, [FREEZE]).open
            assert not decide(decision.until - timedelta(seconds=1), windows, [FREEZE]).open
        moment += timedelta(hours=29, minutes=17)


# -- the spec keys --------------------------------------------------------------------------


def spec(**keys: Any) -> dict[str, Any]:
    return {
        "service": "reviews",
        "router": {"kind": "dryRun"},
        "stable": {"host": "reviews-v1"},
        "canary": {"host": "reviews-v2"},
        **keys,
    }


def berlin(**changes: Any) -> dict[str, Any]:
    return {"days": WEEKDAYS, "start": "09:00", "end": "16:00", "timezone": "Europe/Berlin", **changes}


def test_valid_windows_and_blackouts() -> None:
    rollout = validate_spec(
        spec(
            windows=[berlin(), berlin(days=["Sat"], start="22:00", end="24:00", timezone="UTC")],
            blackouts=[{"start": "2026-12-20T00:00:00+01:00", "end": "2027-01-04T00:00:00Z", "reason": "x"}],
        )
    )
    assert rollout.windows is not None and rollout.windows[1].end == "24:00"
    assert rollout.blackouts[0].end == utc(2027, 1, 4)
    assert validate_spec(spec()).windows is None and validate_spec(spec()).blackouts == []


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (
            {"windows": [berlin(days=["Mon", "Tue", "Fry"])]},
            "windows[0].days[2]: unknown day 'Fry' (Mon..Sun)",
        ),
        ({"windows": [berlin(days=[])]}, "windows[0].days: needs at least one day (Mon..Sun)"),
        ({"windows": [berlin(start="16:00", end="09:00")]}, "windows[0].end: must be after start 16:00"),
        ({"windows": [berlin(end="09:00")]}, "windows[0].end: must be after start 09:00"),
        (
            {"windows": [berlin(start="9am")]},
            "windows[0].start: must be a time \"HH:MM\" (00:00..24:00), got '9am'",
        ),
        ({"windows": [berlin(start="24:00")]}, "windows[0].start: must be 00:00..23:59"),
        ({"windows": [berlin(end="16:60")]}, 'windows[0].end: must be a time "HH:MM"'),
        ({"windows": [berlin(end=960)]}, 'windows[0].end: must be a quoted time "HH:MM"'),
        (
            {"windows": [berlin(timezone="Europe/Berln")]},
            "windows[0].timezone: unknown IANA time zone 'Europe/Berln'",
        ),
        ({"windows": [berlin(timezone="../../etc/passwd")]}, "windows[0].timezone: unknown IANA time zone"),
        ({"windows": [berlin(timezone="CET+1")]}, "windows[0].timezone: unknown IANA time zone"),
        ({"windows": [berlin(zone="UTC")]}, "windows[0].zone: unknown key"),
        ({"windows": []}, "windows: needs at least one window (omit windows to allow any time)"),
        ({"windows": [berlin()] * 21}, "windows: List should have at most 20 items"),
        (
            {"blackouts": [{"start": "2026-12-20T00:00:00", "end": "2027-01-04T00:00:00+01:00"}]},
            "blackouts[0].start: needs a UTC offset (e.g. 2026-12-20T00:00:00+01:00",
        ),
        (
            {"blackouts": [{"start": "2026-12-20T00:00:00+01:00", "end": "2026-12-19T00:00:00+01:00"}]},
            "blackouts[0].end: must be after start 2026-12-20T00:00:00+01:00, "
            "got '2026-12-19T00:00:00+01:00'",
        ),
        (
            {"blackouts": [{"start": "christmas", "end": "2027-01-04T00:00:00+01:00"}]},
            "blackouts[0].start: must be a date and time like 2026-12-20T00:00:00+01:00, got 'christmas'",
        ),
        ({"blackouts": [{"start": "2026-12-20T00:00:00+01:00"}]}, "blackouts[0].end: required"),
    ],
)
def test_bad_windows_and_blackouts_are_refused_naming_the_field(keys: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError) as refused:
        validate_spec(spec(**keys))
    assert refused.value.error_type == "InvalidSpec"
    assert any(line.startswith(problem) for line in refused.value.problems), refused.value.problems


# -- promote at a window wait ---------------------------------------------------------------

NOW = utc(2026, 12, 4, 16)


def held(paused: bool = False) -> RolloutState:
    status = RolloutStatus(rollout_id="r", service="reviews", namespace="default", current_step=2)
    status.waiting_for = WaitingFor(
        kind="window", step=2, since=NOW, until=utc(2026, 12, 7, 8), reason="closed"
    )
    state = RolloutState(status=status)
    if paused:
        state.pause("Manual", "erin", "", NOW)
    return state


def promote(state: RolloutState, **payload: Any) -> str | None:
    message = MESSAGES["promote"]
    request = message.model.model_validate({"by": "alice", **payload})
    refusal = message.check(state, request)
    if refusal is None:
        message.apply(state, request, "update", NOW)
    return refusal


def test_ignore_window_releases_the_window_wait_once_and_no_step() -> None:
    state = held()
    assert promote(state, ignoreWindow=True) is None
    assert state.window_released and state.released_steps == []
    assert promote(state, ignoreWindow=True) == (
        "the deployment window was already overridden; the rollout is moving on"
    )


def test_the_override_is_recorded_with_who() -> None:
    state = held()
    message = MESSAGES["promote"]
    applied = message.apply(
        state, message.model.model_validate({"by": "alice", "ignoreWindow": True}), "signal", NOW
    )
    assert (applied.event, applied.by, applied.step) == ("windowOverridden", "alice", 2)
    assert applied.detail["window"] == "closed"


def test_ignore_window_releases_the_window_before_a_full_promotion_after_an_approved_gate() -> None:
    state = held()
    state.release(2)  # the gate at step 2 was approved; the jump to 100% waits for the window there
    assert promote(state, ignoreWindow=True) is None and state.window_released


def test_ignore_window_is_refused_when_no_window_holds_the_rollout() -> None:
    state = held()
    state.status.waiting_for = WaitingFor(kind="approval", step=2, since=NOW)
    assert promote(state, ignoreWindow=True) == "nothing to override: no deployment window holds the rollout"


def test_plain_promote_at_a_window_is_refused_with_the_way_to_override() -> None:
    refusal = promote(held())
    assert refusal is not None and 'promote with "ignoreWindow": true' in refusal and "(closed)" in refusal


def test_plain_promote_while_paused_at_a_window_ends_the_pause_not_the_window() -> None:
    state = held(paused=True)
    assert derive_phase(state) == "Paused"
    assert promote(state) is None
    assert state.status.paused is None and not state.window_released and state.released_steps == []
    assert derive_phase(state) == "WaitingForWindow"


def test_full_promote_at_a_window_is_accepted_and_still_waits_for_the_window() -> None:
    state = held()
    assert promote(state, full=True) is None
    assert state.full_promotion is not None and not state.window_released
