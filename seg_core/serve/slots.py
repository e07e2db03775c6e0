"""Who runs when: the inference slots every forward pass of a photo takes, ahead of video frames.

``photo_slot()`` wraps each forward pass of a photo in both apps (``seg_core.serve.photos`` is its
only caller): it marks a photo in progress (``PHOTOS_FIRST``), so a running video job waits before
its next frame, and takes one of ``SLOTS`` (``SEG_INFER_WORKERS``, default 1), so that photos of
many sessions share the cores instead of oversubscribing them.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from .. import settings


class PhotosFirst:
    """Photo requests go first: a video job waits before each segmented frame while any photo is
    being segmented in this process, so a long video does not slow the people comparing photos
    on the same cores by more than one frame. ``timeout`` bounds each wait, so a stream of photos
    slows a video but never stops it."""

    def __init__(self, timeout: float = 5.0):
        self.timeout = timeout
        self._cond = threading.Condition()
        self._active = 0

    @property
    def active(self) -> int:
        """Photos being segmented now."""
        with self._cond:
            return self._active

    @contextmanager
    def photo(self):
        """Wrap the segmentation of one photo."""
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, self.timeout)


#: One per process: both apps' photo handlers and video jobs share it.
PHOTOS_FIRST = PhotosFirst()
#: One slot per inference worker, taken by every forward pass of a photo.
SLOTS = threading.Semaphore(settings.infer_workers())


_held = threading.local()


@contextmanager
def photo_slot():
    """Around every forward pass of a photo: ahead of a running video job, in one of ``SLOTS``.
    Reentrant on one thread: a caller that decodes its image inside the slot (the Gradio APIs, so
    that only the slots' images are in memory) and then asks ``seg_core.serve.photos``, which takes
    it too, holds one slot."""
    if getattr(_held, "slot", False):
        yield
        return
    with PHOTOS_FIRST.photo(), SLOTS:
        _held.slot = True
        try:
            yield
        finally:
            _held.slot = False
