"""The gateway clock a live test can move forward (gateway/clock.py)."""

from __future__ import annotations

import time

from gateway.clock import OffsetClock


def test_without_the_file_it_is_the_wall_clock(tmp_path):
    clock = OffsetClock(tmp_path / "clock")
    before = time.time()
    assert before <= clock() <= time.time()


def test_advance_moves_every_reader_forward_and_adds_up(tmp_path):
    writer, reader = OffsetClock(tmp_path / "clock"), OffsetClock(tmp_path / "clock")
    writer.advance(30)
    assert reader() - time.time() >= 29.9
    writer.advance(45)
    assert 74.9 <= reader() - time.time() <= 75.1


def test_a_garbled_file_counts_as_no_offset(tmp_path):
    path = tmp_path / "clock"
    path.write_text("not a number")
    assert abs(OffsetClock(path)() - time.time()) < 1
