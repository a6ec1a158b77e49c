"""realtime.stages.stabilize: the TemporalStabilizer stage (generated clips, CPU)."""

from __future__ import annotations

import queue
import threading

import cv2
import numpy as np
import pytest
from test_flicker import moving_clip, noisy
from test_flow import texture

from realtime.core.errors import UserError
from realtime.core.stylizer import Stage, apply_stages
from realtime.stages.flicker import flicker_score
from realtime.stages.stabilize import TemporalStabilizer, check_stabilize


def run(stab: TemporalStabilizer, sources: list[np.ndarray], styled: list[np.ndarray]) -> list[np.ndarray]:
    return [stab(s, y, stab.prepare(s)) for s, y in zip(sources, styled)]


def static_scene(frames: int = 12, h: int = 96, w: int = 128) -> list[np.ndarray]:
    still = texture(h, w, seed=3)
    return [still.copy() for _ in range(frames)]


def square_clip(frames: int = 8, h: int = 128, w: int = 160, side: int = 40, step: int = 10):
    """A flat-coloured textured square moving right by ``step`` px a frame over a static texture."""
    background = texture(h, w, seed=4)
    square = np.clip(texture(side, side, seed=5).astype(int) // 2 + 120, 0, 255).astype(np.uint8)
    clip, boxes = [], []
    for t in range(frames):
        frame = background.copy()
        x0, y0 = 20 + step * t, 44
        frame[y0 : y0 + side, x0 : x0 + side] = square
        clip.append(frame)
        boxes.append((y0, x0))
    return clip, boxes


def test_is_a_stage_and_validates_strength() -> None:
    stab = TemporalStabilizer()
    assert isinstance(stab, Stage)
    assert 0 < stab.strength <= 1
    with pytest.raises(UserError, match="stabilize must be between 0 and 1"):
        TemporalStabilizer(strength=1.5)
    with pytest.raises(UserError):
        check_stabilize(-0.1)


def detail_energy(image: np.ndarray) -> float:
    """Mean square of the grey image above a 9-px box low-pass, away from the borders."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    high = grey - cv2.blur(grey, (9, 9))
    return float((high[12:-12, 12:-12] ** 2).mean())


@pytest.mark.parametrize("strength", [0.3, 0.6])
def test_blend_amount_is_strength_times_weight(strength: float) -> None:
    """Flat stylised frames: the output is ``styled + strength * weight * (previous - styled)`` exactly."""
    clip = static_scene(2)
    brighter = clip[1].copy()
    brighter[30:70, 40:90] = np.clip(brighter[30:70, 40:90].astype(int) + 12, 0, 255).astype(np.uint8)
    previous, current = np.full_like(clip[0], 200), np.full_like(clip[0], 100)
    stab = TemporalStabilizer(strength=strength)
    np.testing.assert_array_equal(stab(clip[0], previous, stab.prepare(clip[0])), previous)
    motion = stab.prepare(brighter)
    out = stab(brighter, current, motion)
    h, w = current.shape[:2]
    weight = cv2.resize(motion.weight, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    want = current + strength * weight * (previous.astype(np.float64) - current)
    assert np.abs(out - want).max() <= 1.0
    # the weight itself: full trust on the unchanged texture, partial where the input got 12 levels
    # brighter (the photometric ramp between 6 and 18 levels of error), so the blend is partial there
    assert weight[5:25, 5:-5].min() > 0.99
    assert 0.3 < float(np.median(weight[40:60, 50:80])) < 0.7
    assert out[10, 10, 0] == round(100 + 100 * strength)


def test_contrast_of_the_blend_is_restored_to_the_current_frame() -> None:
    """Two unrelated textures averaged lose detail; the stabiliser gives it back, the plain blend does not."""
    clip = static_scene(2)
    rng = np.random.default_rng(11)
    styled = [np.clip(128 + rng.normal(0, 25, clip[0].shape), 0, 255).astype(np.uint8) for _ in range(2)]

    def second(contrast: float) -> np.ndarray:
        stab = TemporalStabilizer(strength=0.5, contrast=contrast)
        for source, frame in zip(clip, styled):
            out = stab(source, frame, stab.prepare(source))
        return out

    restored, plain = second(1.0), second(0.0)
    target = detail_energy(styled[1])
    assert detail_energy(plain) < 0.65 * target  # half of each: about half the energy
    assert 0.8 * target < detail_energy(restored) < 1.25 * target
    # only the detail is scaled: the local mean is the blend's
    low = [cv2.blur(x.astype(np.float32), (9, 9))[12:-12, 12:-12] for x in (restored, plain)]
    assert np.abs(low[0] - low[1]).mean() < 1.0


def test_first_frame_is_exact_and_strength_zero_is_bitwise_per_frame() -> None:
    clip = moving_clip(8)
    styled = noisy(clip, 12.0)
    out = run(TemporalStabilizer(), clip, styled)
    np.testing.assert_array_equal(out[0], styled[0])
    assert any(not np.array_equal(o, y) for o, y in zip(out[1:], styled[1:]))
    zero = run(TemporalStabilizer(strength=0.0), clip, styled)
    for o, y in zip(zero, styled):
        assert o.dtype == np.uint8 and np.array_equal(o, y)


def test_static_scene_with_noisy_stylisation_converges() -> None:
    clip = static_scene(14)
    styled = noisy(clip, 15.0, seed=1)
    out = run(TemporalStabilizer(), clip, styled)
    per_frame, stabilised = flicker_score(clip, styled), flicker_score(clip, out)
    assert stabilised < 0.25 * per_frame
    late = np.abs(out[-1].astype(float) - out[-2]).mean()
    assert late < 0.5 * np.abs(styled[-1].astype(float) - styled[-2]).mean()
    # the history does not drift away from the content: the output stays near the noise-free frame
    assert np.abs(out[-1].astype(float) - clip[-1]).mean() < np.abs(styled[-1].astype(float) - clip[-1]).mean()


def test_moving_scene_flicker_falls() -> None:
    clip = moving_clip(12)
    styled = noisy(clip, 15.0, seed=2)
    out = run(TemporalStabilizer(), clip, styled)
    assert flicker_score(clip, out) < 0.5 * flicker_score(clip, styled)


def test_a_hard_cut_resets_the_history() -> None:
    a, b = static_scene(6), [texture(96, 128, seed=9)] * 6
    clip = a + b
    styled = noisy(clip, 10.0, seed=3)
    stab = TemporalStabilizer()
    out = run(stab, clip, styled)
    assert stab.cuts == 1
    np.testing.assert_array_equal(out[6], styled[6])  # nothing blended across the cut
    assert not np.array_equal(out[7], styled[7])  # blending resumes on the new scene


def test_newly_uncovered_background_takes_the_current_frame() -> None:
    clip, boxes = square_clip()
    styled = noisy(clip, 10.0, seed=4)
    out = run(TemporalStabilizer(strength=1.0), clip, styled)
    side, step, margin = 40, 10, 3
    for t in range(2, len(clip)):
        y0, x0 = boxes[t - 1]  # the square's place in the previous frame, uncovered at t
        region = (slice(y0 + margin, y0 + side - margin), slice(x0 + margin, x0 + step - margin))
        np.testing.assert_array_equal(out[t][region], styled[t][region])
    # while the static background far from the square is blended
    assert not np.array_equal(out[-1][:30], styled[-1][:30])


def test_reset_size_change_and_mutable_strength() -> None:
    clip = static_scene(8)
    styled = noisy(clip, 10.0, seed=5)
    stab = TemporalStabilizer()
    run(stab, clip[:3], styled[:3])
    stab.reset()
    np.testing.assert_array_equal(stab(clip[3], styled[3], stab.prepare(clip[3])), styled[3])
    assert not np.array_equal(stab(clip[4], styled[4], stab.prepare(clip[4])), styled[4])
    stab.strength = 0.0
    np.testing.assert_array_equal(stab(clip[5], styled[5], stab.prepare(clip[5])), styled[5])
    stab.strength = 0.8
    assert not np.array_equal(stab(clip[6], styled[6], stab.prepare(clip[6])), styled[6])
    small, small_styled = clip[7][:64, :80].copy(), styled[7][:64, :80].copy()
    np.testing.assert_array_equal(stab(small, small_styled, stab.prepare(small)), small_styled)
    # a reset between prepare and apply: the frame already prepared is not blended either
    motion = stab.prepare(small)
    stab.reset()
    np.testing.assert_array_equal(stab(small, small_styled, motion), small_styled)


def test_prepare_on_another_thread_gives_the_same_output() -> None:
    clip = moving_clip(10)
    styled = noisy(clip, 12.0, seed=6)
    expected = run(TemporalStabilizer(), clip, styled)
    stab, prepared = TemporalStabilizer(), queue.Queue()
    worker = threading.Thread(target=lambda: [prepared.put(stab.prepare(s)) for s in clip])
    worker.start()
    got = [stab(s, y, prepared.get(timeout=30)) for s, y in zip(clip, styled)]
    worker.join()
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_synchronous_use_without_prepare() -> None:
    clip = moving_clip(6)
    styled = noisy(clip, 12.0, seed=7)
    a, b = TemporalStabilizer(), TemporalStabilizer()
    with_prepare = run(a, clip, styled)
    without = [b(s, y) for s, y in zip(clip, styled)]
    staged = TemporalStabilizer()
    via_apply = [apply_stages([staged], s, y) for s, y in zip(clip, styled)]
    for x, y, z in zip(with_prepare, without, via_apply):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def test_benchmark_pieces_run_on_a_tiny_clip(capsys) -> None:
    from bench.stabilize import generated_clip, report, run_clip

    class NoisyStylizer:  # per-frame noise: the flicker the stabiliser should remove
        name = "noisy"

        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)

        def __call__(self, frame: np.ndarray) -> np.ndarray:
            return np.clip(frame + self.rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8)

    clip = generated_clip(8, (96, 128))
    assert len(clip) == 8 and clip[0].shape == (96, 128, 3) and clip[0].dtype == np.uint8
    result = run_clip("tiny", clip, NoisyStylizer(), [0.8, 0.0], vgg=None, style=None, gram_frames=0)
    assert result.floor < result.stabilised[0.8] < result.per_frame
    assert result.stabilised[0.0] == pytest.approx(result.per_frame)
    report([result], [0.8, 0.0], has_style=False)
    out = capsys.readouterr().out
    assert "tiny" in out and "per-frame" in out and "cost" in out


def test_small_frames_get_finer_flow_and_a_wider_window() -> None:
    """Under 320 px high the flow image keeps a 160 px short side (320x180: 284x160, not 170x96)."""
    import realtime.stages.stabilize as stabilize

    frames = [np.ascontiguousarray(f) for f in moving_clip(2, 180, 320)]
    stab = TemporalStabilizer()
    stab.prepare(frames[0])
    motion = stab.prepare(frames[1])
    assert motion.flow.shape == (160, 284, 2) and stabilize.MIN_FLOW_SIDE == 160
    big = [cv2.resize(f, (640, 360)) for f in frames]  # 320 px and more: half size, as before
    stab = TemporalStabilizer()
    stab.prepare(big[0])
    assert stab.prepare(big[1]).flow.shape == (180, 320, 2)
