"""The video line: one video job at a time per server, first come first served, behind the photos.

``run_video(...)`` is what both apps call: it waits for the server's one video slot
(``VIDEO_JOBS``; ``on_wait(position)`` is told the place in the line), then segments the clip
with ``seg_core.video_compare.segment_video``, pausing before each segmented frame while a photo is
being segmented (``slots.PHOTOS_FIRST``).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .slots import PHOTOS_FIRST


class JobQueue:
    """One video job at a time per server, first come first served. Waiters are told their
    position (1 = next) through ``on_wait`` about every ``poll`` seconds; a waiter that gives up
    (an exception in ``on_wait``, e.g. a closed browser tab) leaves the line."""

    def __init__(self):
        self._cond = threading.Condition()
        self._line: list[object] = []
        self._busy = False

    def waiting(self) -> int:
        with self._cond:
            return len(self._line)

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None, poll: float = 0.5):
        ticket = object()
        with self._cond:
            self._line.append(ticket)
        try:
            while True:
                with self._cond:
                    if not self._busy and self._line[0] is ticket:
                        self._line.pop(0)
                        self._busy = True
                        break
                    position = self._line.index(ticket) + 1
                if on_wait is not None:
                    on_wait(position)
                with self._cond:
                    self._cond.wait(poll)
        except BaseException:
            with self._cond:
                if ticket in self._line:
                    self._line.remove(ticket)
                self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


#: One per process: both apps' video jobs wait in this line.
VIDEO_JOBS = JobQueue()


def run_video(source: str | Path, out_video: str | Path, predictor, on_wait: Callable[[int], None] | None = None,
              on_start: Callable[[], object] | None = None, queue: JobQueue = VIDEO_JOBS, **options):
    """Wait for the video slot (``on_wait(position)`` meanwhile, ``on_start()`` once it is ours),
    then ``segment_video(source, out_video, predictor, **options)`` behind the photos; returns its
    ``VideoResult`` (``VideoError`` for a bad file)."""
    from ..video_compare import segment_video

    with queue.slot(on_wait=on_wait):
        if on_start is not None:
            on_start()
        return segment_video(source, out_video, predictor, pause=PHOTOS_FIRST.wait, **options)
