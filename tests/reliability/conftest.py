"""Shared helpers of the reliability tests: a hard time limit for cases that used to hang."""

from __future__ import annotations

import signal

import pytest


@pytest.fixture
def time_limit():
    """`with time_limit(s):` fails the test instead of hanging past `s` seconds."""
    import contextlib

    @contextlib.contextmanager
    def limit(seconds: int):
        def expire(signum, frame):
            raise TimeoutError(f"did not finish within {seconds} s (a hang)")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return limit
