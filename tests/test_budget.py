import pytest

from autoresearch_portable.harness.run.budget import BudgetClock, eval_rows


def test_first_step_and_settling_steps_are_warmup():
    c = BudgetClock(budget_seconds=10)
    c.step(30.0, 100, 1e9)   # compile
    c.step(2.0, 100, 1e9)    # still settling: much faster than the previous step
    c.step(1.0, 100, 1e9)    # still dropping by more than the settle ratio
    assert c.in_warmup and c.warmup_steps == 3 and c.training_seconds == 0
    c.step(0.95, 100, 1e9)   # settled: timed
    assert not c.in_warmup
    assert c.training_seconds == pytest.approx(0.95)
    assert c.warmup_seconds == pytest.approx(33.0)
    # warm-up steps still trained the model: they count in the totals
    assert c.total_tokens == 400 and c.timed_tokens == 100


def test_warmup_is_capped():
    c = BudgetClock(budget_seconds=10, max_warmup_steps=3)
    for s in (100, 50, 25, 12, 6):
        c.step(s, 1, 1)
    assert c.warmup_steps == 3 and not c.in_warmup
    assert c.training_seconds == pytest.approx(18)


def test_wall_mode_done_after_budget_of_timed_seconds():
    c = BudgetClock(budget_seconds=3)
    c.step(5.0, 10, 10)  # warm-up (compile), not counted
    c.step(1.0, 10, 10)  # much faster than the step before: still settling
    assert c.progress == 0 and not c.done
    for _ in range(3):
        c.step(1.0, 10, 10)
    assert c.progress == pytest.approx(1.0) and c.done
    assert c.tokens_per_second == pytest.approx(10)


def test_work_mode_counts_all_flops():
    c = BudgetClock(budget_seconds=3, mode="work", flop_budget=100)
    c.step(9.0, 1, 40)  # warm-up FLOPs count towards the FLOP budget
    assert c.progress == pytest.approx(0.4)
    c.step(9.0, 1, 60)
    assert c.done


def test_work_mode_needs_flop_budget():
    with pytest.raises(ValueError):
        BudgetClock(budget_seconds=3, mode="work")
    with pytest.raises(ValueError):
        BudgetClock(budget_seconds=3, mode="sometimes")


def test_eval_rows_is_ten_percent_of_budget_and_bounded():
    # 10k tok/s training -> ~15k tok/s of forwards, three per scored row (the row, its causality
    # copy, the row among other batch-mates); 10% of 300 s = 30 s -> 150k scored tokens -> 146 rows of 1024
    assert eval_rows(300, 10_000, 1024, max_rows=10_000) == 146
    assert eval_rows(300, 10_000, 1024, max_rows=100) == 100
    assert eval_rows(1, 10, 1024, max_rows=100) == 4  # a floor so the SE is defined
    assert eval_rows(1, 10, 1024, max_rows=2) == 2


def test_eval_rows_from_the_measured_forward_rate():
    # arp init's probe measured 17,400 forward tokens/s: three passes per row leave 5,800 scored
    # tokens/s; 10 % of 30 s -> 17,400 tokens -> 16 rows of 1024 (the estimate from 5,000 training
    # tokens/s alone says 7)
    assert eval_rows(30, 5_000, 1024) == 7
    assert eval_rows(30, 5_000, 1024, forward_tokens_per_second=17_400) == 16
    assert eval_rows(30, 5_000, 1024, forward_tokens_per_second=100) == 4  # the floor still holds


def test_work_mode_time_limit_leaves_room_for_a_busy_machine():
    """Wall mode stops a run at twice its budget; in work/matched mode the FLOPs are fixed and the
    clock is only a far backstop (a hog slowed torch up to ~20x here); the stall guard finds hangs."""
    from autoresearch_portable.harness.run.limits import stall_seconds, time_limit

    assert time_limit(300) == 600
    assert time_limit(10) == 70  # at least a minute of start-up and evaluation on top
    assert time_limit(60, "work") == 1800
    assert time_limit(60, "matched") == 1800
    assert time_limit(30, "work") > 20 * 30 + 60
    assert stall_seconds(30) == 120 and stall_seconds(600) == 300
