"""SideThread: a failure in the calling thread keeps each side job's failure, once, as a note."""

import threading

import pytest

from exporter.sidethread import SideThread


def test_a_side_failure_re_raised_by_a_later_job_is_noted_once():
    def failing():
        raise ValueError("bookings failed")

    with pytest.raises(RuntimeError) as raised:
        with SideThread() as side:
            first = side.submit(failing)
            second = side.submit(lambda: first.result())  # re-raises the same exception object
            assert second.exception() is first.exception()  # both done before the main thread fails
            raise RuntimeError("main failed")
    assert raised.value.__notes__ == ["a side thread failed too: ValueError: bookings failed"]


def test_jobs_not_started_are_cancelled_and_not_noted():
    release, ran = threading.Event(), []
    with pytest.raises(RuntimeError) as raised:
        with SideThread() as side:
            side.submit(release.wait, 5)  # keeps the one worker busy
            waiting = side.submit(lambda: ran.append("waiting"))
            side.submit(lambda: waiting.result())  # would find the earlier job cancelled
            threading.Timer(0.2, release.set).start()
            raise RuntimeError("main failed")
    assert ran == []
    assert getattr(raised.value, "__notes__", []) == []
