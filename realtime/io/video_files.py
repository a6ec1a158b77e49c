"""Video files with PyAV: probe, read frames with their timestamps, write them back with the audio.

* :func:`probe` opens a file, decodes its first frame and returns a :class:`VideoInfo` (size,
  frame rate, time base, rotation, audio streams), or raises :class:`UserError` with one line
  for a missing, corrupt or truncated file, one without a video stream or without frames.
* :func:`read_frames` yields :class:`~realtime.pipeline.Frame` objects: ``(H, W, 3)`` uint8 RGB
  plus a :class:`FrameTime` (the frame's own ``pts`` and ``time_base``, variable frame rate kept).
* :class:`VideoWriter` is a pipeline sink: it encodes each frame at the ``pts`` it came with, keeps
  the frame rate and the rotation (display matrix) of the input, and remuxes the input's audio
  packets untouched, interleaved by time. Frames may arrive smaller than the output (processing
  at a reduced ``--size``); they are scaled up (bicubic) as they are converted for the encoder.

Odd frame sizes: 4:2:0 video (``yuv420p``) cannot store an odd width or height. With the
automatic pixel format an odd-sized output is encoded ``yuv444p`` instead (exact size; H.264
4:4:4 plays in ffmpeg/VLC/mpv but not in browsers or QuickTime); asking for ``yuv420p``
explicitly pads the right/bottom edge by one replicated pixel (e.g. 333x199 -> 334x200).

Frames may also arrive as ``(H, W, 3)`` uint8 CUDA tensors (a stylizer that keeps its output on
the GPU): for ``yuv420p`` they are converted there (:mod:`realtime.io.yuv`, BT.709 for HD,
BT.601 for SD, limited range) and only the planes are copied to the host. NumPy frames are
converted by FFmpeg (BT.601). The stream is tagged with the matrix its frames were converted with.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from realtime.core.errors import InvalidValue, UserError
from realtime.core.images import IMAGE_SUFFIXES, list_images, read_image
from realtime.io.colorspace import LIMITED_RANGE, TAGS, matrix_for
from realtime.io.encoders import NVENC_QUALITY, is_hardware
from realtime.pipeline import Frame, FrameInfo

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (
    ".mp4",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".m4v",
    ".ts",
    ".mts",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".gif",
)
X264_LIKE = {"libx264", "libx264rgb", "libx265"}
DEFAULT_CRF = 18.0  # x264/x265: visually close to the source
DEFAULT_PRESET = "veryfast"  # ~5x cheaper than medium at 640x360, about the same size at crf 18
CRF_RANGES = {  # the constant-quality scale of each encoder (8-bit video)
    "libx264": (0, 51),
    "libx264rgb": (0, 51),
    "libx265": (0, 51),
    "libvpx": (4, 63),
    "libvpx-vp9": (0, 63),
    "libsvtav1": (0, 63),
    "libaom-av1": (0, 63),
}
CRF_CODECS = set(CRF_RANGES)
DEFAULT_RATE = Fraction(25)


class FrameTime(NamedTuple):
    """A decoded frame's timestamp: ``pts`` in units of ``time_base`` seconds."""

    pts: int
    time_base: Fraction

    @property
    def seconds(self) -> float:
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learnt about a file's first video stream.

    ``width``/``height`` are the stored (coded) frame size; ``display_matrix`` (9 ints, FFmpeg's
    layout) and ``rotation`` (degrees counter-clockwise, as ``VideoFrame.rotation``) say how
    players turn it. ``frames`` may be an estimate (0 when unknown).
    """

    path: Path
    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    frames: int
    duration: float | None
    codec: str
    start_time: float = 0.0  # seconds: the first frame's time (timestamps may not start at 0)
    rotation: int = 0
    display_matrix: tuple[int, ...] | None = None
    audio_streams: int = 0

    @property
    def display_size(self) -> tuple[int, int]:
        """``(width, height)`` as shown by players (swapped for a quarter turn)."""
        return (self.height, self.width) if abs(self.rotation) % 180 == 90 else (self.width, self.height)


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a video file")
    try:
        return av.open(str(path))
    except av.error.EOFError:
        raise UserError(f"{path}: the file ends before any video data (empty or truncated)") from None
    except av.error.FFmpegError as exc:
        raise UserError(f"{path}: not a readable video (corrupt or truncated?): {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix, read only where one rotates or mirrors the picture.

    ``frame.side_data`` is touched only then: in PyAV 18 a side-data entry that carries its own
    metadata (the ICC profile of a PNG or JPEG frame) is freed twice when the frame is garbage
    collected, which crashes the interpreter. ``frame.rotation`` reads the matrix in C, safely;
    it is 0 only without a matrix or for a pure upside-down mirror, which is then not kept.
    """
    if not frame.rotation:
        return None
    try:
        data = bytes(frame.side_data["DISPLAYMATRIX"])
    except (KeyError, ValueError):
        return None
    return tuple(int(v) for v in np.frombuffer(data, dtype=np.int32)[:9]) if len(data) >= 36 else None


# Demuxers that read a single still image (``image2`` for numbered files, ``*_pipe`` per codec).
STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "jpegls_pipe")


def _first_frame(container: av.container.InputContainer, stream: av.VideoStream) -> av.VideoFrame | None:
    """Decode the first frame of ``stream``; the decoding generator is closed before it is dropped.

    A PyAV generator left suspended until garbage collection may run after its container was
    closed; closing it here keeps every PyAV object's end in an order that cannot crash.
    """
    frames = container.decode(stream)
    try:
        return next(frames, None)
    finally:
        frames.close()


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open ``path``, decode its first frame, and describe the first video stream."""
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise UserError(f"{path}: no video stream (it holds {', '.join(kinds)})")
        if set(container.format.name.split(",")) & set(STILL_IMAGE_FORMATS):
            raise UserError(f"{path}: a still image, not a video")
        stream = container.streams.video[0]
        first = None
        try:
            first = _first_frame(container, stream)
        except av.error.FFmpegError as exc:
            raise UserError(f"{path}: cannot decode the video (corrupt or truncated?): {_reason(exc)}") from None
        if first is None:
            raise UserError(f"{path}: the video stream has no frames")
        rate = stream.average_rate or stream.guessed_rate or DEFAULT_RATE
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        frames = stream.frames or (round(duration * rate) if duration else 0)
        matrix = _display_matrix(first)
        rotation = int(first.rotation) if matrix else 0
        if matrix is None and stream.metadata.get("rotate"):
            rotation = -int(float(stream.metadata["rotate"]))  # the old tag is clockwise
        start_time = float(first.pts * stream.time_base) if first.pts is not None and stream.time_base else 0.0
        return VideoInfo(
            path=path,
            width=first.width,
            height=first.height,
            rate=Fraction(rate),
            start_time=start_time,
            time_base=stream.time_base or Fraction(1, 90000),
            frames=int(frames),
            duration=duration,
            codec=stream.codec_context.name,
            rotation=rotation,
            display_matrix=matrix,
            audio_streams=len(container.streams.audio),
        )
    finally:
        container.close()


def read_frames(
    info: VideoInfo, *, start: float = 0.0, duration: float | None = None, size: tuple[int, int] | None = None
) -> Iterator[Frame]:
    """Yield every frame of ``info.path`` from ``start`` seconds for ``duration`` seconds, in order.

    ``start`` counts from the stream's first frame. ``size`` ``(width, height)`` scales frames
    while converting them to RGB (area filter). Each frame's ``meta`` is its :class:`FrameTime`;
    a stream without timestamps gets them from the frame rate. Raises :class:`UserError` when
    decoding fails midway, when a whole-file read gets fewer packets than the container indexes
    (a truncated file), or when no frame is left.
    """
    container = _open(info.path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    tb = stream.time_base or info.time_base
    step = max(1, round(1 / (info.rate * tb)))
    width, height = size or (info.width, info.height)
    begin = info.start_time + start
    end = begin + duration if duration is not None else None
    count = packets = 0
    last_pts: int | None = None
    demuxed = None
    try:
        if start > 0:
            container.seek(round(begin / tb), stream=stream, backward=True)
        demuxed = container.demux(stream)
        for packet in demuxed:
            packets += 1 if packet.size else 0
            for frame in packet.decode():
                pts = frame.pts if frame.pts is not None else (last_pts + step if last_pts is not None else 0)
                last_pts = pts
                t = float(pts * tb)
                if end is not None and t >= end - 1e-6:
                    break
                if t >= begin - 1e-6:
                    count += 1
                    yield Frame(
                        frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA"),
                        FrameTime(pts, tb),
                    )
            else:
                continue
            break  # past the end of the --duration window
        else:
            if start == 0 and stream.frames and packets < stream.frames:
                raise UserError(
                    f"{info.path}: the file is truncated: only {packets} of its {stream.frames} video frames are there"
                )
    except av.error.FFmpegError as exc:
        raise UserError(
            f"{info.path}: decoding failed after {count} frames (corrupt or truncated?): {_reason(exc)}"
        ) from None
    finally:
        if demuxed is not None:
            demuxed.close()  # before the container: see _first_frame
        container.close()
    if count == 0:
        where = f" after {start:g} s" if start else ""
        raise UserError(f"{info.path}: no video frames{where}")


def frames_of(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The ``(H, W, 3)`` uint8 RGB frames of a video file, or of a folder of images sorted by name.

    Missing, unreadable and empty inputs raise :class:`UserError` before the first frame.
    """
    path = Path(path)
    if path.is_dir():
        files = list_images(path, recursive=False)
        if not files:
            raise UserError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return (read_image(file) for file in files)
    return (frame.image for frame in read_frames(probe(path)))


def choose_pix_fmt(codec: str, width: int, height: int, requested: str | None = None) -> tuple[str, tuple[int, int]]:
    """Pick the encoder's pixel format and how many pixels to pad ``(right, bottom)``.

    Auto: ``yuv420p`` for even sizes; ``yuv444p`` for odd ones when the codec has it (exact
    size), else ``yuv420p`` with padding; codecs without ``yuv420p`` get their first RGB format.
    """
    try:
        formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or [])]
    except Exception:  # noqa: BLE001 - av raises different errors per version
        raise UserError(f"unknown video codec {codec!r}; try libx264, libx264rgb, ffv1, libvpx-vp9") from None
    odd = width % 2 or height % 2
    if requested:
        if formats and requested not in formats:
            raise InvalidValue("pix_fmt", f"{requested}: codec {codec} takes {', '.join(formats)}")
        pix_fmt = requested
    elif "yuv420p" in formats:
        pix_fmt = "yuv444p" if odd and "yuv444p" in formats else "yuv420p"
    else:
        rgb = [f for f in ("rgb24", "bgr24", "bgr0", "gbrp") if f in formats]
        pix_fmt = rgb[0] if rgb else (formats[0] if formats else "yuv420p")
    fmt = av.VideoFormat(pix_fmt)
    pad_w = width % 2 if fmt.chroma_width(16) < 16 else 0  # chroma subsampled across
    pad_h = height % 2 if fmt.chroma_height(16) < 16 else 0  # ... or down
    return pix_fmt, (pad_w, pad_h)


@dataclass
class EncodeOptions:
    """Encoder settings of ``nst-video`` (see its ``--help``)."""

    codec: str = "libx264"
    pix_fmt: str | None = None
    crf: float | None = None
    bitrate: int | None = None
    preset: str | None = None
    audio: bool = True
    frame_threads: bool = False  # x264/x265 frame threading (throughput on many cores) instead of PyAV's slices
    device_frames: bool = False  # frames arrive as CUDA tensors: YUV conversion on the GPU (BT.709 for HD)


def check_encode_options(options: EncodeOptions) -> None:
    """Refuse settings the encoder would reject or misread (``crf`` out of range, ``crf`` on a codec without it)."""
    if options.crf is None:
        return
    if options.codec not in CRF_RANGES:
        raise InvalidValue("crf", f"does not apply to codec {options.codec}; use {{bitrate}}", mentions=("bitrate",))
    low, high = CRF_RANGES[options.codec]
    if not low <= options.crf <= high:
        raise InvalidValue("crf", f"must be between {low} and {high} for {options.codec}, got {options.crf:g}")
    if options.bitrate is not None and options.bitrate <= 0:
        raise InvalidValue("bitrate", f"must be positive, got {options.bitrate}")


def default_encode_options(codec: str = "libx264", **changes: object) -> EncodeOptions:
    """``nst-video``'s defaults: crf 18 and preset veryfast for x264/x265, the codec's own otherwise."""
    x264 = codec in X264_LIKE
    base = dict(codec=codec, crf=DEFAULT_CRF if x264 else None, preset=DEFAULT_PRESET if x264 else None)
    return EncodeOptions(**{**base, **changes})


class VideoWriter:
    """A pipeline sink that encodes RGB frames to ``path`` and remuxes the audio of ``info.path``.

    ``size`` ``(width, height)`` is the output size (default: the input's). ``start``/``duration``
    (seconds from the first frame) select the audio to copy; a ``start`` > 0 shifts every
    timestamp so the output begins at 0, otherwise timestamps pass through unchanged. Frames
    whose ``info.meta`` is a :class:`FrameTime` keep their timestamp; other frames are numbered
    at the input's frame rate.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        info: VideoInfo,
        options: EncodeOptions | None = None,
        *,
        size: tuple[int, int] | None = None,
        start: float = 0.0,
        duration: float | None = None,
    ) -> None:
        options = options or EncodeOptions()
        self.path = Path(path)
        self.width, self.height = size or (info.width, info.height)
        self.pix_fmt, (self.pad_w, self.pad_h) = choose_pix_fmt(options.codec, self.width, self.height, options.pix_fmt)
        self.time_base = info.time_base
        self.rate = info.rate
        # Input times [begin, end) are kept; with --start everything shifts so the output starts at 0.
        self.begin = info.start_time + start
        self.end = self.begin + duration if duration is not None else None
        self.shift = self.begin if start > 0 else 0.0
        self._offset = round(self.shift / self.time_base)
        self._step = max(1, round(1 / (self.rate * self.time_base)))
        self._last_pts: int | None = None
        self.frames = 0
        self._closed = False
        self._audio_in = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._audio_map: dict[int, av.stream.Stream] = {}
        self._pending: av.Packet | None = None
        self._cut: float | None = None  # input seconds: no audio past this (set by stopped_early)
        self._yuv = None  # realtime.io.yuv.YuvConverter, made for the first frame that arrives on a device
        self.container = av.open(str(self.path), "w")
        try:
            self._add_video(options, info)
            if options.audio and info.audio_streams:
                self._add_audio(info.path)
        except BaseException:
            self.abort()
            raise

    # -- setup -------------------------------------------------------------------------------
    def _add_video(self, options: EncodeOptions, info: VideoInfo) -> None:
        codec = options.codec
        try:
            stream = self.container.add_stream(codec, rate=self.rate)
        except ValueError as exc:
            raise UserError(f"cannot write {codec} video into {self.path.suffix or 'this'} files: {exc}") from None
        stream.width, stream.height = self.width + self.pad_w, self.height + self.pad_h
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base  # pts pass through unscaled (VFR kept)
        opts: dict[str, str] = {}
        check_encode_options(options)
        if options.crf is not None:
            opts["crf"] = f"{options.crf:g}"
            if codec.startswith("libvpx"):
                stream.bit_rate = 0
        if options.bitrate is not None:
            stream.bit_rate = int(options.bitrate)
        if options.preset is not None:
            if codec not in X264_LIKE:
                raise InvalidValue("preset", f"does not apply to codec {codec}")
            opts["preset"] = options.preset
        if is_hardware(codec) and codec.endswith("_nvenc"):
            opts = {**NVENC_QUALITY, **opts} if options.bitrate is None else opts
        stream.codec_context.options = opts
        if options.frame_threads and codec in X264_LIKE:
            stream.codec_context.thread_count = 0  # x264's auto: 1.5 threads per core
            stream.codec_context.thread_type = "FRAME"
        self.matrix = matrix_for(self.width, self.height) if options.device_frames else "bt601"
        if self.pix_fmt.startswith("yuv"):
            self._tag(stream, self.matrix)
        if info.display_matrix is not None:
            stream.set_display_matrix(info.display_matrix)
        elif info.rotation:
            stream.set_display_rotation(info.rotation)
        if self.path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            self.container.options["movflags"] = "+faststart"  # moov first: plays while downloading
        self.stream = stream

    @staticmethod
    def _tag(stream: av.video.stream.VideoStream, matrix: str) -> None:
        """Say in the stream which matrix and range its YUV frames use (players guess otherwise)."""
        try:
            context = stream.codec_context
            context.colorspace = context.color_primaries = context.color_trc = TAGS[matrix]
            context.color_range = LIMITED_RANGE
        except (AttributeError, TypeError, ValueError):  # an older PyAV without these setters
            log.debug("this PyAV cannot tag the colour matrix", exc_info=True)

    def _add_audio(self, source: Path) -> None:
        self._audio_in = av.open(str(source))
        streams = list(self._audio_in.streams.audio)
        for s in streams:
            try:
                self._audio_map[s.index] = self.container.add_stream_from_template(s)
            except ValueError:
                raise UserError(
                    f"the {s.codec_context.name} audio of {source.name} cannot go into a "
                    f"{self.path.suffix} file; write a .mkv file, or leave the audio out"
                ) from None
        if self.shift > 0:
            self._audio_in.seek(int(self.begin * av.time_base), backward=True)
        self._audio_packets = self._audio_in.demux(*streams)

    # -- audio interleaving ------------------------------------------------------------------
    def _mux_audio_until(self, seconds: float | None) -> None:
        """Remux the input's audio packets up to ``seconds`` of input time (None: to the end)."""
        if self._audio_packets is None:
            return
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._audio_packets)
                except (StopIteration, av.error.FFmpegError):
                    self._end_audio()
                    return
            if packet.dts is None or packet.pts is None:
                continue  # demuxer flush packets
            t = float(packet.pts * packet.time_base)
            if seconds is not None and t > seconds:
                self._pending = packet
                return
            if self.shift > 0 and t + 1e-6 < self.begin:
                continue  # (without --start, keep priming packets)
            if self.end is not None and t >= self.end - 1e-6:
                self._end_audio()
                return
            if self._cut is not None and t + float((packet.duration or 0) * packet.time_base) > self._cut + 1e-3:
                self._end_audio()  # stopped early: no audio past the last video frame
                return
            if self.shift > 0:
                shift = round(self.shift / packet.time_base)
                packet.pts -= shift
                packet.dts -= shift
            packet.stream = self._audio_map[packet.stream.index]
            self.container.mux(packet)

    # -- sink protocol -----------------------------------------------------------------------
    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        """Encode one ``(h, w, 3)`` uint8 RGB frame (scaled to the output size if it differs)."""
        meta = info.meta if info is not None else None
        if isinstance(meta, FrameTime):
            pts = round(meta.pts * meta.time_base / self.time_base) - self._offset
        else:
            pts = self.frames * self._step
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders need strictly rising pts
        self._last_pts = pts
        vframe = self._to_video_frame(frame) if isinstance(frame, np.ndarray) else self._from_device(frame)
        vframe.pts = pts
        vframe.time_base = self.time_base
        packets = self.stream.encode(vframe)
        self._mux_audio_until(float((pts + self._offset) * self.time_base))
        self.container.mux(packets)
        self.frames += 1

    def _to_video_frame(self, frame: np.ndarray) -> av.VideoFrame:
        h, w = frame.shape[:2]
        if (w, h) != (self.width, self.height):
            vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            frame = vframe.reformat(self.width, self.height, "rgb24", interpolation="BICUBIC").to_ndarray(
                format="rgb24"
            )
        if self.pad_w or self.pad_h:
            frame = np.pad(frame, ((0, self.pad_h), (0, self.pad_w), (0, 0)), mode="edge")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")

    def _from_device(self, frame) -> av.VideoFrame:
        """A ``(h, w, 3)`` uint8 tensor on the model's device -> a ``yuv420p`` frame converted there."""
        h, w = frame.shape[:2]  # odd sides: padded by one replicated pixel on the device
        if self.pix_fmt != "yuv420p" or (w, h) != (self.width, self.height):
            return self._to_video_frame(frame.cpu().numpy())
        if self._yuv is None:
            from realtime.io.yuv import YuvConverter  # noqa: PLC0415 - torch, only when frames come on a device

            self._yuv = YuvConverter()
        return av.VideoFrame.from_ndarray(self._yuv(frame, self.matrix), format="yuv420p")

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio, write the trailer. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.container.mux(self.stream.encode(None))
            self._mux_audio_until(None)
            self.container.close()
        finally:
            self._close_audio()

    def abort(self) -> None:
        """Stop without flushing (after an error; the file will be deleted)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being discarded anyway
            log.debug("closing %s after an error failed", self.path, exc_info=True)
        finally:
            self._close_audio()

    def stopped_early(self) -> None:
        """The run ends before the input did (Ctrl-C): copy no audio past the last written frame.

        ``close()`` then writes a file whose audio, video and container durations agree. The
        audio ends at the last whole audio packet that fits (within one packet, ~20 ms).
        """
        if self._last_pts is None:
            self._cut = self.begin
        else:
            self._cut = float((self._last_pts + self._step + self._offset) * self.time_base)

    def _end_audio(self) -> None:
        if self._audio_packets is not None:
            self._audio_packets.close()  # the demuxing generator ends before its container
            self._audio_packets = None
        self._pending = None

    def _close_audio(self) -> None:
        self._end_audio()
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
        else:
            self.abort()
