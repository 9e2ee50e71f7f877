"""The store's watchdog: one thread that stops each statement from outside once its time is up, and never after
the statement's block has ended (when its connection may be lent to the next statement)."""

from __future__ import annotations

import threading

from sophia_mcp.store.watchdog import Watchdog


def test_a_block_ended_in_time_is_never_stopped_and_one_past_its_time_is() -> None:
    watchdog = Watchdog("test-watchdog")
    stopped: list[str] = []
    late = threading.Event()
    try:
        with watchdog.watch(0.05, lambda: stopped.append("ended in time")):
            pass
        with watchdog.watch(0.1, lambda: (stopped.append("past its time"), late.set())):
            assert late.wait(30)  # the watchdog has passed the first deadline too: it keeps them in order
    finally:
        watchdog.close()
    assert stopped == ["past its time"]


def test_a_block_due_sooner_than_the_watchdog_sleeps_for_is_stopped_at_its_own_time() -> None:
    watchdog = Watchdog("test-watchdog")
    order: list[str] = []
    first, sooner = threading.Event(), threading.Event()
    try:
        with watchdog.watch(30, lambda: order.append("later")):
            # Stops run under the watchdog's lock, which it keeps until it sleeps again: once `first` is set and
            # the next `watch` has the lock, the watchdog is asleep until the 30 s deadline.
            with watchdog.watch(0.01, lambda: (order.append("first"), first.set())):
                assert first.wait(10)
            with watchdog.watch(0.05, lambda: (order.append("sooner"), sooner.set())):
                assert sooner.wait(10)
    finally:
        watchdog.close()
    assert order == ["first", "sooner"]


def test_a_stop_that_fails_leaves_the_watchdog_watching_the_others() -> None:
    watchdog = Watchdog("test-watchdog")
    after = threading.Event()

    def failing() -> None:
        raise RuntimeError("the connection is gone")

    try:
        with watchdog.watch(0.01, failing):
            with watchdog.watch(0.05, after.set):
                assert after.wait(10)
    finally:
        watchdog.close()


def test_a_closed_watchdog_starts_again_on_the_next_watch() -> None:
    watchdog = Watchdog("test-watchdog")
    with watchdog.watch(30, lambda: None):
        pass
    watchdog.close()
    again = threading.Event()
    try:
        with watchdog.watch(0.01, again.set):
            assert again.wait(10)
    finally:
        watchdog.close()
    assert not [t for t in threading.enumerate() if t.name == "test-watchdog"]


def test_many_blocks_ended_long_before_their_deadlines_still_leave_the_open_one_watched() -> None:
    """Ended blocks are swept out of the deadlines (under a long time limit they would pile up): the sweep keeps
    the blocks still open."""
    watchdog = Watchdog("test-watchdog")
    stopped = threading.Event()
    try:
        with watchdog.watch(0.2, stopped.set):
            for _ in range(5000):
                with watchdog.watch(600, lambda: None):
                    pass
            assert stopped.wait(10)
    finally:
        watchdog.close()
