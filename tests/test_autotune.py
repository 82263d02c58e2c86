import pytest

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.run.autotune import largest_fitting_batch


class FakeAllocator:
    """Runs 'fit' up to a memory limit and reports OOM above it, like a child process would."""

    def __init__(self, limit_rows):
        self.limit_rows = limit_rows
        self.tried = []

    def __call__(self, batch):
        self.tried.append(batch)
        return "oom" if batch > self.limit_rows else "ok"


def test_halves_until_it_fits():
    fake = FakeAllocator(limit_rows=40)
    assert largest_fitting_batch(fake, 128) == 32
    assert fake.tried == [128, 64, 32]


def test_keeps_a_batch_that_fits_first_time():
    fake = FakeAllocator(limit_rows=1000)
    assert largest_fitting_batch(fake, 16) == 16
    assert fake.tried == [16]


def test_oom_at_batch_one_is_a_clear_user_error():
    with pytest.raises(UserError, match="even at device batch 1"):
        largest_fitting_batch(FakeAllocator(limit_rows=0), 8)


def test_other_failures_are_not_retried():
    with pytest.raises(UserError, match="crash"):
        largest_fitting_batch(lambda b: "crash", 8)
