"""Style vectors from pictures: the style resolver of the ``arbitrary`` family.

Ghiasi et al. (2017) condition one transform net on a 100-number style vector that a style
prediction network (MobileNetV2) computes from *any* picture. :class:`ArbitraryStyles` turns a
style spec into that vector (:mod:`realtime.core.styles`):

* a term's key is a picture file (``painting.jpg``), a folder (it stands for its pictures in name
  order: the style starts at the first, and a camera's ``]``/``[`` step through the rest), or a label
  already known (``default``, a camera grab such as ``camera 1``);
* each picture is prepared as the published model was used (centre square crop, Lanczos to
  256x256, RGB 0..1) and its vector computed once: kept in memory, and on disk under
  ``cache_dir("styles")`` by the file's SHA-256, so a later run does not even load the predictor;
* blends (``a.jpg:0.7,b.jpg:0.3``) mix the vectors (the paper's interpolation);
* :meth:`ArbitraryStyles.picture_vector` gives the vector of an in-memory picture (a photo's own
  vector for ``--strength``, a camera frame taken as the style).

The predictor is the published int8 graph (``arbitrary_predict.onnx``, see
:mod:`realtime.core.arbitrary_files`) run in ONNX Runtime on the CPU: a style is predicted once,
so it never needs the GPU, and this is exactly the graph the peer package runs. Without ONNX
Runtime (it is an optional extra) the same graph runs as its PyTorch rebuild (:class:`TorchPredictor`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from realtime.core.arbitrary_files import FILE_SHA256, PREDICTOR, magenta_file
from realtime.core.contract import IOContract
from realtime.core.download import cache_dir, sha256_of
from realtime.core.errors import InvalidValue, UserError
from realtime.core.files import atomic_path
from realtime.core.images import IMAGE_SUFFIXES, list_images, read_image, resize
from realtime.core.styles import StyleTerm, blend

log = logging.getLogger(__name__)

STYLE_SIZE = 256  # the predictor's input: a square picture, as Magenta trained and published it
STYLE_DIM = 100
PREPARATION = "v1"  # centre square crop, Lanczos to 256x256; part of the disk cache's key
DEFAULT_LABEL = "default"
# The vector of samples/styles/shipwreck.jpg (Turner, "The Shipwreck of the Minotaur", public
# domain) from the published predictor, as its int8 output codes q: vector = (q + 25) * 0.0198789425.
# The style a model starts with before any --style; tests/test_arbitrary_family.py recomputes it.
DEFAULT_CODES = (
    -9, -22, 23, 0, -67, -5, 4, 17, 28, -22, 8, -61, 26, -21, 34, -2, 9, -8, 88, 5,
    -64, 15, -1, -45, -19, -10, -12, -62, 3, -31, -66, 4, -3, -14, -35, -17, 3, 17, 8, 43,
    -13, -96, -62, -17, -32, -43, 59, 25, -3, -36, 45, 36, -48, -51, -16, -17, -10, 19, -47, 21,
    47, 37, -95, -58, -11, -43, -27, -15, -4, -41, -102, -43, -48, 21, -50, -28, -99, -34, -44, -69,
    -24, 27, -30, -30, 12, 0, -40, 23, 55, -52, 30, -47, 31, 11, -80, -77, 16, -29, -50, -21,
)  # fmt: skip
OUTPUT_STEP, OUTPUT_ZERO = 0.019878942519426346, -25  # the graph's output quantisation

Picture = np.ndarray  # (H, W, 3) uint8 RGB
Predict = Callable[[np.ndarray], np.ndarray]  # (256, 256, 3) float32 0..1 -> (100,) float32


def default_style() -> np.ndarray:
    """The vector of :data:`DEFAULT_CODES`, ``(100,)`` float32."""
    return ((np.asarray(DEFAULT_CODES, np.float32) - OUTPUT_ZERO) * np.float32(OUTPUT_STEP)).astype(np.float32)


def style_input(picture: Picture) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> the predictor's input ``(256, 256, 3)`` float32 0..1: centre square, Lanczos."""
    h, w = picture.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = resize(np.ascontiguousarray(picture[top : top + side, left : left + side]), STYLE_SIZE, STYLE_SIZE)
    return square.astype(np.float32) / np.float32(255.0)


class PredictorSession:
    """The published style predictor in ONNX Runtime (CPU): a prepared picture -> ``(100,)`` float32.

    ``threads``: intra-op threads (default ONNX Runtime's). Idle threads sleep rather than spin,
    since the predictor shares the cores with the transform net. Thread-safe (ORT sessions are).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        # Lazy: every network import reaches this module (through the family registry), and a Gatys
        # still or a Johnson model never runs a predictor; onnxruntime costs them ~0.3 s of start-up.
        import onnxruntime as ort  # noqa: PLC0415

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types
            raise UserError(f"{path} is not a loadable style predictor: {str(exc).strip()[:200]}") from None
        self.input = self.session.get_inputs()[0].name

    def __call__(self, prepared: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input: np.ascontiguousarray(prepared, np.float32)[None]})[0]
        return np.asarray(out, np.float32).reshape(-1)


class TorchPredictor:
    """The same published predictor rebuilt in PyTorch, its int8 rounding simulated (within a few output steps
    of ONNX Runtime): for installs without ONNX Runtime. Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        # Lazy: reading the graph needs onnx, which only this fallback does at run time.
        from realtime.core.nets.arbitrary_convert import style_predictor_from_onnx  # noqa: PLC0415

        self.net = style_predictor_from_onnx(path)
        self._lock = threading.Lock()

    def __call__(self, prepared: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(prepared.transpose(2, 0, 1), np.float32))[None]
        with self._lock, torch.inference_mode():
            return self.net(x)[0].numpy()


def _published_predictor() -> Predict:
    path = magenta_file(PREDICTOR)
    try:
        return PredictorSession(path)
    except ImportError:  # a base install without ONNX Runtime: the PyTorch rebuild of the same graph
        log.info("ONNX Runtime is not installed; predicting style vectors with the PyTorch rebuild")
        return TorchPredictor(path)


class ArbitraryStyles:
    """The ``arbitrary`` family's style resolver (``names`` / ``vector`` / ``default``, see the module docstring).

    ``predictor``: builds the predict function when first needed (default: the published graph,
    found or fetched by :func:`realtime.core.arbitrary_files.magenta_file`). ``disk_cache``: the
    folder for vectors by file digest (default under ``cache_dir("styles")``; None: memory only).
    Thread-safe: a key handler, a background grab and the decode thread may all ask at once.
    """

    def __init__(
        self,
        predictor: Callable[[], Predict] = _published_predictor,
        disk_cache: Path | None | str = "default",
    ) -> None:
        self._make_predictor = predictor
        self._predict: Predict | None = None
        if disk_cache == "default":
            disk_cache = cache_dir("styles", f"magenta-{FILE_SHA256[PREDICTOR][:12]}-{PREPARATION}")
        self.disk_cache = Path(disk_cache) if disk_cache is not None else None
        self._lock = threading.RLock()
        self._predict_lock = threading.Lock()
        self._vectors: dict[str, np.ndarray] = {DEFAULT_LABEL: default_style()}
        self._files: dict[str, Path] = {}  # label -> picture file, for names whose vector is not computed yet
        self._by_file: dict[tuple[str, int, float], np.ndarray] = {}
        self._names: list[str] = [DEFAULT_LABEL]
        self.predictions = 0  # predictor runs so far (tests and benchmarks read it)

    # -- the resolver protocol -----------------------------------------------------------------
    def names(self) -> list[str]:
        """The pictures chosen so far, in order of first use (``default`` until the first one)."""
        with self._lock:
            return list(self._names)

    def default(self) -> np.ndarray:
        return default_style()

    def vector(self, terms: Sequence[StyleTerm]) -> np.ndarray:
        """The blend of the terms' vectors, ``(100,)`` float32; InvalidValue (``style``) for a bad key."""
        vectors = [self.label_vector(self._add(term.key)) for term in terms]
        return blend(vectors, [t.weight for t in terms])

    # -- pictures ------------------------------------------------------------------------------
    def picture_vector(self, picture: Picture) -> np.ndarray:
        """The style vector of an ``(H, W, 3)`` uint8 RGB picture (not cached)."""
        return self._run_predictor(style_input(picture))

    def add_picture(self, label: str, picture: Picture) -> tuple[int, np.ndarray]:
        """Compute ``picture``'s vector and add it to :meth:`names` as ``label``: ``(its index, the vector)``."""
        vector = self.picture_vector(picture)
        with self._lock:
            self._vectors[label] = vector
            index = self._remember(label)
        return index, vector

    def label_vector(self, label: str) -> np.ndarray:
        """The vector of a known label (computed from its file on first use)."""
        with self._lock:
            if label in self._vectors:
                return self._vectors[label]
            path = self._files.get(label)
        if path is None:
            raise InvalidValue("style", f"{label!r} is not a known style")
        vector = self.file_vector(path)
        with self._lock:
            self._vectors[label] = vector
        return vector

    def file_vector(self, path: Path) -> np.ndarray:
        """The vector of a picture file: from memory, from the disk cache (by SHA-256), else predicted."""
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime)
        with self._lock:
            if key in self._by_file:
                return self._by_file[key]
        digest = sha256_of(path) if self.disk_cache is not None else ""
        stored = self.disk_cache / f"{digest[:32]}.npy" if self.disk_cache is not None else None
        vector = self._load(stored)
        if vector is None:
            vector = self._run_predictor(style_input(read_image(path)))
            self._store(stored, vector)
        with self._lock:
            self._by_file[key] = vector
        return vector

    def prefetch(self, stop: threading.Event | None = None) -> None:
        """Compute the vectors of every named picture not computed yet (e.g. a folder's, in a background thread);
        ``stop`` set ends it between pictures."""
        for label in self.names():
            if stop is not None and stop.is_set():
                return
            try:
                self.label_vector(label)
            except UserError as exc:  # an unreadable picture in a folder: said when it is chosen
                log.warning("%s", exc)

    def load_predictor(self) -> None:
        """Load the predictor now (a camera's grab key then answers without the start-up cost)."""
        self._predictor()

    # -- internals -----------------------------------------------------------------------------
    def _add(self, key: str) -> str:
        """Make ``key`` a known label (a folder adds its pictures) and return the label to use."""
        with self._lock:
            if key in self._vectors or key in self._files:
                return key
        path = Path(key).expanduser()
        if path.is_dir():
            pictures = list_images(path, recursive=False)
            if not pictures:
                raise InvalidValue(
                    "style", f"{key}: no pictures in this folder (any {', '.join(IMAGE_SUFFIXES)} file is a style)"
                )
            labels = [str(p) for p in pictures]
            with self._lock:
                for label, picture in zip(labels, pictures):
                    self._files.setdefault(label, picture)
                    self._remember(label)
            return labels[0]
        if not path.is_file():
            raise InvalidValue(
                "style", f"{key!r} is not a picture or a folder of pictures (any image can be the style)"
            )
        with self._lock:
            self._files[key] = path
            self._remember(key)
        return key

    def _remember(self, label: str) -> int:
        """Add ``label`` to the names (the default gives way to the first real style); its index."""
        if self._names == [DEFAULT_LABEL] and label != DEFAULT_LABEL:
            self._names = []
        if label not in self._names:
            self._names.append(label)
        return self._names.index(label)

    def _predictor(self) -> Predict:
        with self._predict_lock:
            if self._predict is None:
                self._predict = self._make_predictor()
            return self._predict

    def _run_predictor(self, prepared: np.ndarray) -> np.ndarray:
        vector = np.asarray(self._predictor()(prepared), np.float32).reshape(-1)
        if vector.shape != (STYLE_DIM,):
            raise ValueError(f"the style predictor returned {vector.size} numbers, expected {STYLE_DIM}")
        self.predictions += 1
        return vector

    @staticmethod
    def _load(stored: Path | None) -> np.ndarray | None:
        if stored is None or not stored.is_file():
            return None
        try:
            vector = np.load(stored, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable cached style vector %s (%s)", stored, exc)
            return None
        return vector.astype(np.float32) if vector.shape == (STYLE_DIM,) else None

    @staticmethod
    def _store(stored: Path | None, vector: np.ndarray) -> None:
        if stored is None:
            return
        try:
            with atomic_path(stored) as tmp, open(tmp, "wb") as out:
                np.save(out, vector.astype(np.float32), allow_pickle=False)
        except (OSError, UserError) as exc:  # a read-only cache only costs the next run a prediction
            log.warning("cannot cache the style vector in %s (%s)", stored.parent, exc)


def arbitrary_styles(contract: IOContract) -> ArbitraryStyles:
    """The registry's resolver factory for an ``arbitrary`` contract (a 100-number style vector)."""
    if contract.condition_dim != STYLE_DIM:
        raise UserError(
            f"model {contract.name!r} is an arbitrary-style model with a {contract.condition_dim}-number "
            f"style vector; the published predictor gives {STYLE_DIM}"
        )
    return ArbitraryStyles()
