"""The curated plausible bugs of the mutation check (``run.py``), each with the tests that should catch it.

A mutant replaces ``old`` (which must occur exactly once in ``path``) by ``new``. The first group
are the bugs issue #19 found surviving every test; the rest are this file's own, one or more per
core module. ``tests`` are the only files run for it (``pytest -x``), so keep them to the files
that exercise the code. ``EQUIVALENT`` lists every mutant that may survive, with the reason no
test can tell it from the original (an equivalent mutant); run.py fails on any other survivor.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


LOSSES = "realtime/core/losses.py"
FRAMES = "realtime/core/frames.py"
CONTRACT = "realtime/core/contract.py"
CHECKPOINT = "realtime/core/checkpoint.py"
IMAGES = "realtime/core/images.py"
STYLES = "realtime/core/styles.py"
STRENGTH = "realtime/stages/strength.py"
COLOR = "realtime/stages/color.py"
STAGES = "realtime/stages/__init__.py"
STABILIZE = "realtime/stages/stabilize.py"
VIDEO = "realtime/io/video_files.py"
SOURCES = "realtime/io/sources.py"
VERIFY = "export/verify.py"
PIPELINE = "realtime/pipeline.py"

T_LOSSES = ("tests/test_losses.py",)
T_STAGES = ("tests/test_stages.py",)
T_STAB = ("tests/test_stabilize.py",)
T_VIDEO = ("tests/test_video_io.py", "tests/test_video_cli.py")
T_VERIFY = ("tests/test_export_verify.py", "tests/test_export.py")
T_FRAMES = ("tests/test_frames.py", "tests/test_backends.py")

MUTANTS: list[Mutant] = [
    # -- the rows of issue #19 -----------------------------------------------------------------
    Mutant(
        "losses-content-from-output",
        LOSSES,
        "content_term(feats, content_targets, self.content_layers)",
        "content_term(feats, feats, self.content_layers)",
        T_LOSSES,
        "content target taken from the outputs (content term always 0)",
    ),
    Mutant(
        "losses-style-over-content-layers",
        LOSSES,
        "style = style_term(feats, grams, norms, self.style_layers, self.layer_weights)",
        "style = style_term(feats, grams, norms, self.style_layers, self.layer_weights) / len(self.content_layers)",
        T_LOSSES,
        "style term divided by the number of content layers",
    ),
    Mutant(
        "color-planes-swapped",
        COLOR,
        "styled_ycc[..., 1:] = source_ycc[..., 1:]",
        "styled_ycc[..., :2] = source_ycc[..., :2]",
        T_STAGES,
        "colour preservation copies Y and Cr instead of Cr and Cb",
    ),
    Mutant(
        "strength-operands-swapped",
        STRENGTH,
        "cv2.addWeighted(styled, float(strength), source, 1.0 - float(strength), 0.0)",
        "cv2.addWeighted(source, float(strength), styled, 1.0 - float(strength), 0.0)",
        T_STAGES,
        "strength 0.3 gives 70% style",
    ),
    Mutant(
        "audio-held-packet-dropped",
        VIDEO,
        "self._pending = packet",
        "self._pending = None",
        T_VIDEO,
        "the audio packet held back for the next video frame is lost",
    ),
    Mutant(
        "audio-start-not-shifted",
        VIDEO,
        "shift = round(self.shift / packet.time_base)",
        "shift = 0",
        T_VIDEO,
        "with --start the audio keeps its input timestamps (starts late)",
    ),
    Mutant(
        "upscale-channels-swapped",
        VIDEO,
        'vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")',
        'vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")',
        T_VIDEO,
        "--keep-size upscaling swaps red and blue",
    ),
    Mutant(
        "stabilize-strength-squared",
        STABILIZE,
        "weight *= min(strength, 1.0)",
        "weight *= min(strength, 1.0) ** 2",
        T_STAB,
        "the history weight is strength squared",
    ),
    Mutant(
        "stabilize-no-contrast",
        STABILIZE,
        "        if self.contrast > 0:\n",
        "        if False:\n",
        T_STAB,
        "contrast restoration removed (a plain blend)",
    ),
    Mutant(
        "verify-levels-not-converted",
        VERIFY,
        "levels_per_unit = 255.0 / (hi - lo)",
        "levels_per_unit = 1.0",
        T_VERIFY,
        "errors of -1..1 models not converted to levels (127x looser)",
    ),
    Mutant(
        "verify-mean-not-max",
        VERIFY,
        "max_abs = float(np.abs(np.clip(got, lo, hi) - expected).max())",
        "max_abs = float(np.abs(np.clip(got, lo, hi) - expected).mean())",
        T_VERIFY,
        "the parity check compares the mean error",
    ),
    Mutant(
        "verify-inputs-0-1",
        VERIFY,
        "x = torch.rand(batch, 3, height, width, generator=generator) * (hi - lo) + lo",
        "x = torch.rand(batch, 3, height, width, generator=generator)",
        T_VERIFY,
        "check inputs drawn from 0..1 instead of the model's value range",
    ),
    Mutant(
        "verify-first-shape-only",
        VERIFY,
        "if not np.isfinite(max_abs) or check.max_levels > tolerance_levels:",
        "if len(checks) == 1 and (not np.isfinite(max_abs) or check.max_levels > tolerance_levels):",
        T_VERIFY,
        "only the first of the shapes is enforced",
    ),
    # -- losses --------------------------------------------------------------------------------
    Mutant(
        "gram-not-over-channels",
        LOSSES,
        "/ (c * h * w)",
        "/ (h * w)",
        T_LOSSES,
        "Gram matrix divided by H*W only",
    ),
    Mutant(
        "tv-vertical-only",
        LOSSES,
        "    return dh + dw\n",
        "    return dh\n",
        T_LOSSES,
        "total variation forgets the horizontal steps",
    ),
    Mutant(
        "style-layer-weights-ignored",
        LOSSES,
        "total = total + weights[name] * per_sample.mean()",
        "total = total + per_sample.mean()",
        T_LOSSES,
        "style layer weights ignored",
    ),
    Mutant(
        "blended-style-unnormalised",
        LOSSES,
        "[w / total for w in weights]",
        "[w for w in weights]",
        T_LOSSES,
        "a blend of styles sums the Gram matrices instead of averaging",
    ),
    # -- frames and contract -------------------------------------------------------------------
    Mutant(
        "frames-offset-sign",
        FRAMES,
        "pixels = (y - np.float32(offset)) * np.float32(1.0 / scale)",
        "pixels = (y + np.float32(offset)) * np.float32(1.0 / scale)",
        T_FRAMES,
        "-1..1 outputs mapped back with the wrong offset",
    ),
    Mutant(
        "frames-bgr-output-kept",
        FRAMES,
        "        y = y[..., ::-1]\n",
        "        y = y\n",
        T_FRAMES,
        "BGR model outputs not reversed back to RGB",
    ),
    Mutant(
        "frames-pad-top",
        FRAMES,
        "np.pad(batch, ((0, 0), (0, pb), (0, 0), (0, 0))",
        "np.pad(batch, ((0, 0), (pb, 0), (0, 0), (0, 0))",
        T_FRAMES,
        "frames padded at the top but cropped at the bottom",
    ),
    Mutant(
        "frames-torch-truncates",
        FRAMES,
        "pixels.round_().clamp_(0, 255)",
        "pixels.clamp_(0, 255)",
        T_FRAMES,
        "the torch path truncates instead of rounding",
    ),
    Mutant(
        "frames-min-side-ignored",
        FRAMES,
        "return Crop(height, width, max(floor, math.ceil(height / m) * m), max(floor, math.ceil(width / m) * m))",
        "return Crop(height, width, math.ceil(height / m) * m, math.ceil(width / m) * m)",
        T_FRAMES,
        "tiny frames not padded up to the minimum side",
    ),
    Mutant(
        "contract-fixed-size-lost",
        CONTRACT,
        'data["fixed_size"] = list(self.fixed_size) if self.fixed_size else None',
        'data["fixed_size"] = None',
        ("tests/test_checkpoint.py", "tests/test_export.py"),
        "a fixed input size is not stored with the model",
    ),
    # -- checkpoint ----------------------------------------------------------------------------
    Mutant(
        "checkpoint-legacy-norm-keys-kept",
        CHECKPOINT,
        "if match and match.group(1) in norm_prefixes:",
        "if match and match.group(1) not in norm_prefixes:",
        ("tests/test_cyclegan_nets.py", "tests/test_export.py"),
        "published checkpoints' InstanceNorm running stats not dropped",
    ),
    Mutant(
        "checkpoint-ddp-prefix-kept",
        CHECKPOINT,
        'k.removeprefix("module.")',
        "k",
        ("tests/test_checkpoint.py",),
        "state dicts saved from a DistributedDataParallel wrapper not recognised",
    ),
    Mutant(
        "checkpoint-shape-mismatch-unreported",
        CHECKPOINT,
        "tuple(state_dict[k].shape) != tuple(expected[k].shape)",
        "False",
        ("tests/test_transformer_net.py", "tests/test_cyclegan_nets.py"),
        "a tensor of another shape gives a torch traceback instead of one line",
    ),
    # -- stages --------------------------------------------------------------------------------
    Mutant(
        "stages-strength-before-color",
        STAGES,
        "(self.stabilizer, self.color, self.strength)",
        "(self.stabilizer, self.strength, self.color)",
        T_STAGES,
        "strength applied before colour preservation (strength 0 is no longer the input)",
    ),
    Mutant(
        "toggle-no-reset-when-back-on",
        STAGES,
        "        if not self._was_on:\n            self.stage.reset()\n",
        "        if not self._was_on:\n            pass\n",
        T_STAGES,
        "a stabiliser switched back on blends across the gap",
    ),
    Mutant(
        "strength-one-not-exact",
        STRENGTH,
        "    if strength >= 1.0:\n        return styled\n",
        "",
        T_STAGES,
        "strength 1 goes through the weighted sum (fine) -- see EQUIVALENT",
    ),
    # -- stabiliser ----------------------------------------------------------------------------
    Mutant(
        "stabilize-no-photometric-check",
        STABILIZE,
        "weight = np.clip((low + span - error) / span, 0.0, 1.0) * reliable",
        "weight = np.ones_like(error) * reliable",
        T_STAB,
        "newly uncovered areas trusted (ghosts)",
    ),
    Mutant(
        "stabilize-gain-where-unblended",
        STABILIZE,
        "        np.copyto(gain, 1.0, where=weight <= 0)\n",
        "",
        T_STAB,
        "contrast gain applied where nothing was blended",
    ),
    Mutant(
        "stabilize-cut-ignored",
        STABILIZE,
        "if cut_score > self.cut_threshold or reliable.mean() < CUT_MIN_RELIABLE:",
        "if reliable.mean() < CUT_MIN_RELIABLE:",
        T_STAB,
        "a scene cut blends the old scene into the new",
    ),
    # -- video files ---------------------------------------------------------------------------
    Mutant(
        "video-rotation-dropped",
        VIDEO,
        "            stream.set_display_matrix(info.display_matrix)\n",
        "            pass\n",
        T_VIDEO,
        "the rotation of phone videos is lost",
    ),
    Mutant(
        "video-read-ignores-start-time",
        VIDEO,
        "    begin = info.start_time + start\n",
        "    begin = start\n",
        T_VIDEO,
        "--start counted from time 0, not from the first frame",
    ),
    Mutant(
        "video-audio-not-cut-at-duration",
        VIDEO,
        "if self.end is not None and t >= self.end - 1e-6:",
        "if False:",
        T_VIDEO,
        "--duration does not cut the audio",
    ),
    Mutant(
        "video-pts-not-offset",
        VIDEO,
        "pts = round(meta.pts * meta.time_base / self.time_base) - self._offset",
        "pts = round(meta.pts * meta.time_base / self.time_base)",
        T_VIDEO,
        "with --start the video keeps its input timestamps",
    ),
    Mutant(
        "video-odd-size-420",
        VIDEO,
        'pix_fmt = "yuv444p" if odd and "yuv444p" in formats else "yuv420p"',
        'pix_fmt = "yuv420p"',
        T_VIDEO,
        "odd sizes encoded 4:2:0 (padded) instead of 4:4:4",
    ),
    # -- export parity -------------------------------------------------------------------------
    Mutant(
        "verify-reference-not-clamped",
        VERIFY,
        "expected = reference(x).clamp(lo, hi).numpy()",
        "expected = reference(x).numpy()",
        T_VERIFY,
        "the reference is compared unclamped (valid exports rejected)",
    ),
    # -- styles --------------------------------------------------------------------------------
    Mutant(
        "styles-blend-unnormalised",
        STYLES,
        ").sum(0) / np.float32(total)",
        ").sum(0)",
        ("tests/test_styles.py",),
        "style vectors summed instead of averaged",
    ),
    Mutant(
        "styles-crossfade-backwards",
        STYLES,
        "((1.0 - t) * self.start + t * self.target)",
        "(t * self.start + (1.0 - t) * self.target)",
        ("tests/test_styles.py",),
        "a cross-fade runs from the target to the start",
    ),
    Mutant(
        "styles-spec-split-at-first-colon",
        STYLES,
        'key, sep, tail = part.rpartition(":")',
        'key, sep, tail = part.partition(":")',
        ("tests/test_styles.py",),
        "a Windows path or URL in a style spec is split at its first colon",
    ),
    # -- images --------------------------------------------------------------------------------
    Mutant(
        "images-alpha-on-black",
        IMAGES,
        "(255, 255, 255, 255)",
        "(0, 0, 0, 255)",
        ("tests/test_images.py",),
        "transparent pixels become black",
    ),
    Mutant(
        "images-exif-ignored",
        IMAGES,
        "img = ImageOps.exif_transpose(img)",
        "img = img",
        ("tests/test_images.py",),
        "EXIF rotation ignored",
    ),
    Mutant(
        "images-resize-axes-swapped",
        IMAGES,
        "cv2.resize(rgb, (width, height),",
        "cv2.resize(rgb, (height, width),",
        ("tests/test_images.py", "tests/test_frames.py"),
        "the fast resize swaps width and height",
    ),
    # -- pipeline and sources ------------------------------------------------------------------
    Mutant(
        "pipeline-stages-reversed",
        PIPELINE,
        "for stage, prepared in zip(self.stages, info.prepared):",
        "for stage, prepared in reversed(list(zip(self.stages, info.prepared))):",
        ("tests/test_pipeline.py",),
        "stages applied in reverse order",
    ),
    Mutant(
        "pipeline-live-reads-ahead",
        PIPELINE,
        "                if self.live:",
        "                if False:",
        ("tests/test_pipeline.py",),
        "live mode queues stale camera frames",
    ),
    Mutant(
        "pipeline-failed-sink-closed",
        PIPELINE,
        'closer = getattr(sink, "abort", None) if failed else None',
        "closer = None",
        ("tests/test_pipeline.py",),
        "a sink that failed is finalised instead of aborted",
    ),
    Mutant(
        "sources-bgr-kept",
        SOURCES,
        "Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), FrameTime(pts, time_base), t)",
        "Frame(bgr, FrameTime(pts, time_base), t)",
        ("tests/test_sources.py",),
        "camera frames stay BGR",
    ),
    Mutant(
        "sources-dropped-miscounted",
        SOURCES,
        "self.dropped += self._seq - seen - 1",
        "self.dropped += self._seq - seen",
        ("tests/test_sources.py",),
        "the frame handed over is counted as dropped",
    ),
]

# Mutants that no test can tell apart from the original, and why. run.py fails on any other survivor.
EQUIVALENT: dict[str, str] = {
    "strength-one-not-exact": (
        "cv2.addWeighted(styled, 1.0, source, 0.0, 0.0) rounds to styled exactly, so the early return "
        "only saves time; the output is bit-identical"
    ),
}
