"""nst-video on a CUDA model (decided with a stand-in stylizer): frames stay on the GPU, encoder choice printed."""

from __future__ import annotations

import pytest
import torch

from realtime.cli import video
from realtime.stages import build_stages
from realtime.stages.stabilize_torch import TorchStabilizer


class CudaStylizer:
    device = torch.device("cuda")  # what the setup reads; nothing runs on it here
    keep_on_device = False


def setup(argv, monkeypatch, hardware):
    monkeypatch.setattr(video, "hardware_encoder", lambda codec: hardware)
    args = video.build_parser().parse_args(["in.mp4", "--model", "m", *argv])
    stages = build_stages(args.strength, args.preserve_color, 0.9 if args.stabilize else None)
    stylizer = CudaStylizer()
    options = video.gpu_setup(stylizer, stages, args, video.encode_options(args))
    return stylizer, stages, options


def test_defaults_on_a_gpu_keep_frames_there_and_pick_the_hardware_encoder(monkeypatch, capsys):
    stylizer, stages, options = setup(["--stabilize"], monkeypatch, ("h264_nvenc", ["h264_nvenc"]))
    assert stylizer.keep_on_device and options.device_frames and options.codec == "h264_nvenc"
    assert options.crf is None and options.preset is None  # x264's settings do not apply to NVENC
    assert isinstance(stages.stabilizer.stage, TorchStabilizer)
    assert "encoder: h264_nvenc (hardware)" in capsys.readouterr().err
    stages.stabilizer.stage.close()


@pytest.mark.parametrize(
    ("argv", "on_device", "codec"),
    [
        ([], True, "libx264"),  # no hardware encoder opened: x264, frame threads
        (["--strength", "0.5"], False, "libx264"),  # the blend runs on the host
        (["--codec", "libx265"], True, "libx265"),  # an explicit codec is kept
        (["--crf", "20"], True, "libx264"),
    ],
)
def test_what_changes_the_gpu_choices(argv, on_device, codec, monkeypatch, capsys):
    stylizer, _, options = setup(argv, monkeypatch, (None, ["h264_nvenc"]))
    assert stylizer.keep_on_device is on_device and options.device_frames is on_device
    assert options.codec == codec and options.frame_threads
    err = capsys.readouterr().err
    assert ("h264_nvenc did not open" in err) is (argv in ([], ["--strength", "0.5"]))


def test_cpu_models_are_left_alone(monkeypatch):
    args = video.build_parser().parse_args(["in.mp4", "--model", "m"])
    options = video.encode_options(args)
    assert video.gpu_setup(object(), build_stages(), args, options) is options
    assert not options.device_frames and not options.frame_threads and options.codec == "libx264"
