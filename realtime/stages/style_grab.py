"""Take the live frame as the new style of a picture-style model, without stalling the stream.

:class:`StyleGrab` is a Stage that changes no pixels: its ``prepare`` keeps the newest frame as
it is read (decode thread). :meth:`StyleGrab.grab` (the camera's ``g`` key, on the window's thread)
hands a copy of that frame to a worker thread, which predicts its style vector (the
predictor runs neither on the inference thread nor on the window's), adds it to the model's
styles as ``camera N`` and makes it the style at once: the next inference uses it (a fade in
progress through the camera's :class:`~realtime.stages.style_fade.StyleSchedule` is replaced, so
it cannot undo the grab; a fade would only add frames of delay to a deliberate "take this").
Frames keep flowing with the old style meanwhile; ``python -m bench arbitrary --grab`` measures
the time from the key to the vector and to the first frame shown with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from realtime.core.styles import has_picture_styles
from realtime.stages.style_fade import StyleSchedule

log = logging.getLogger(__name__)


class StyleGrab:
    """The newest source frame, on request, as a picture-style model's new style (see the module docstring)."""

    def __init__(self, schedule: StyleSchedule) -> None:
        self.schedule = schedule
        self._latest: np.ndarray | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nst-grab")
        self.grabs = 0

    def prepare(self, source: np.ndarray) -> Any:
        self._latest = source
        return None

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray:
        return styled

    def reset(self) -> None:
        pass

    def grab(self, control: object, on_done: Callable[[int], None] | None = None) -> Future | None:
        """Start taking the newest frame as ``control``'s style; None when there is no frame or no picture styles.

        The returned future gives the new style's index in ``control.style_names()``; ``on_done(index)``
        is called from the worker thread once the model has the new vector.
        """
        frame = self._latest
        if frame is None or not has_picture_styles(control):
            return None
        self.grabs += 1
        label, picture = f"camera {self.grabs}", frame.copy()

        def work() -> int:
            index, vector = control.add_picture_style(label, picture)  # type: ignore[attr-defined]
            control.set_style(vector)  # type: ignore[attr-defined]
            self.schedule.go_to(control, vector, frames=1)  # type: ignore[arg-type]  # ends any fade in progress
            if on_done is not None:
                on_done(index)
            return index

        future = self._worker.submit(work)
        future.add_done_callback(_log_failure)
        return future

    def close(self) -> None:
        """Stop the worker thread (after any grab in progress)."""
        self._worker.shutdown(wait=True)


class StylePreparation:
    """Each picture-style model's :meth:`prepare_styles` (the predictor, a folder's vectors) on its own thread.

    :meth:`stop` asks them to stop between pictures and waits (at most one prediction), so a command
    that ends early leaves no thread inside ONNX Runtime while the interpreter shuts down.
    """

    def __init__(self, models: Iterable[object]) -> None:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=model.prepare_styles, args=(self._stop,), name="nst-styles")  # type: ignore[attr-defined]
            for model in models
            if has_picture_styles(model)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)


def _log_failure(future: Future) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("taking the frame as the style failed: %s", exc)
