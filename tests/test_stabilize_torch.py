"""realtime.stages.stabilize_torch: the stabiliser's torch path agrees with the OpenCV one (CPU)."""

from __future__ import annotations

import numpy as np
import torch
from test_flicker import moving_clip, noisy
from test_stabilize import run, square_clip

from realtime.core.stylizer import Stage
from realtime.stages import build_stages
from realtime.stages.flicker import flicker_score
from realtime.stages.stabilize import TemporalStabilizer
from realtime.stages.stabilize_torch import MAX_FLOW_SIDE, TorchStabilizer, use_torch_stabilizer


def test_torch_path_gives_the_opencv_frames(one_torch_thread) -> None:
    clip = moving_clip(10)
    styled = noisy(clip, 15.0, seed=2)
    reference = run(TemporalStabilizer(), clip, styled)
    torch_stab = TorchStabilizer()
    assert isinstance(torch_stab, Stage)
    ours = run(torch_stab, clip, styled)
    np.testing.assert_array_equal(ours[0], styled[0])  # the first frame is exact
    diffs = [np.abs(a.astype(int) - b) for a, b in zip(ours, reference)]
    assert max(d.max() for d in diffs) <= 2 and max(d.mean() for d in diffs) < 0.05
    assert flicker_score(clip, ours) < 0.5 * flicker_score(clip, styled)
    torch_stab.close()


def test_tensor_frames_stay_tensors_and_cuts_reset(one_torch_thread) -> None:
    clip, _ = square_clip(6)
    styled = noisy(clip, 12.0, seed=1)
    stab = TorchStabilizer(strength=0.8)
    outs = [stab(s, torch.from_numpy(y), stab.prepare(s)) for s, y in zip(clip, styled)]
    assert all(isinstance(o, torch.Tensor) and o.dtype == torch.uint8 and o.shape == clip[0].shape for o in outs)
    reference = run(TemporalStabilizer(strength=0.8), clip, styled)
    assert max(np.abs(o.numpy().astype(int) - r).max() for o, r in zip(outs, reference)) <= 2
    stab.reset()
    first = stab(clip[0], torch.from_numpy(styled[0]), stab.prepare(clip[0]))
    assert torch.equal(first, torch.from_numpy(styled[0]))  # after a reset: the stylised frame as it is
    stab.strength = 0.0
    assert stab.strength == 0.0 and stab.analysis.strength == 0.0
    stab.close()


def test_flow_size_is_bounded_for_hd_frames() -> None:
    stab = TorchStabilizer()
    assert stab.flow_scale((1080, 1920, 3)) * 1080 == MAX_FLOW_SIDE
    assert stab.flow_scale((360, 640, 3)) == 0.5  # small frames keep the OpenCV path's flow size
    stab.close()


def test_swapped_into_the_stages_with_its_strength() -> None:
    stages = build_stages(stabilize=0.6)
    use_torch_stabilizer(stages.stabilizer, "cpu")
    assert isinstance(stages.stabilizer.stage, TorchStabilizer) and stages.stabilizer.stage.strength == 0.6
    use_torch_stabilizer(None, "cpu")  # no stabiliser: nothing to swap
    stages.stabilizer.stage.close()
