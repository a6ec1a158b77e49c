"""The still CLI: bad input is one line on stderr and exit 2; the gatys path writes its images.

Only the gatys path runs for real; the model methods are checked for argument validation and
for what they hand to ``realtime.model_still.stylize_image`` (a stand-in module here).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realtime.cli import still
from realtime.core.images import read_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def pics(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {}
    for name, (h, w) in {"content": (24, 32), "style": (32, 32), "style2": (20, 40)}.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[name])
    return paths


def gatys_args(pics, out, *extra):
    return ["--content", str(pics["content"]), "--style", str(pics["style"]), "-o", str(out), "--device", "cpu", *extra]


def fails(capsys, argv, *fragments) -> str:
    """Run main(argv); it must exit 2 with exactly one line on stderr containing ``fragments``."""
    code = still.main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_gatys_still_writes_output_and_snapshots(capsys, pics, tmp_path):
    out = tmp_path / "new" / "folder" / "out.png"
    code = still.main(
        gatys_args(pics, out, "--size", "32", "--steps", "3", "--snapshot-every", "1", "--style-scale", "0.75")
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    rgb = read_image(out)
    assert rgb.shape == (24, 32, 3)
    assert not np.array_equal(rgb, read_image(pics["content"]))
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["out.png", "out.step0001.png", "out.step0002.png"]  # no temp files left over


def test_two_styles_blend_scales_and_colour_preservation(capsys, pics, tmp_path):
    out = tmp_path / "mix.jpg"
    argv = [
        "--method",
        "gatys",
        "--content",
        str(pics["content"]),
        "--style",
        str(pics["style"]),
        str(pics["style2"]),
        "--style-blend",
        "0.7,0.3",
        "--scales",
        "2",
        "--steps",
        "3",
        "--size",
        "40",
        "--preserve-color",
        "--optimizer",
        "adam",
        "--init",
        "noise",
        "--pooling",
        "avg",
        "-o",
        str(out),
    ]
    assert still.main(argv) == 0, capsys.readouterr().err
    assert read_image(out).shape == (30, 40, 3)


def test_bad_input_is_one_line_and_exit_2(capsys, pics, tmp_path):
    out = tmp_path / "out.png"
    fails(capsys, gatys_args(pics, out)[:1] + [str(tmp_path / "nope.jpg")] + gatys_args(pics, out)[2:], "no such file")
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    fails(capsys, ["--content", str(text), "--style", str(pics["style"]), "-o", str(out)], "not an image")
    fails(capsys, gatys_args(pics, out, "--size", "0"), "--size")
    fails(capsys, gatys_args(pics, out, "--size", "abc"), "--size")
    fails(capsys, gatys_args(pics, out)[:-1] + ["tpu"], "is not a device")
    fails(capsys, gatys_args(pics, pics["content"]), "refusing to overwrite")
    fails(capsys, gatys_args(pics, pics["style"]), "refusing to overwrite")
    fails(capsys, gatys_args(pics, tmp_path / "out.gif"), ".png")
    fails(capsys, gatys_args(pics, out, "--steps", "0"), "--steps")
    fails(capsys, gatys_args(pics, out, "--style-blend", "1,2"), "--style-blend")
    fails(capsys, gatys_args(pics, out, "--style-blend", "a,b"), "--style-blend")
    fails(capsys, gatys_args(pics, out, "--snapshot-every", "0"), "--snapshot-every")
    fails(capsys, gatys_args(pics, out, "--style-layer-weights", "relu1_1=x"), "--style-layer-weights")
    fails(capsys, gatys_args(pics, out, "--style-layer-weights", "conv1_1=2"), "not a style layer")
    fails(capsys, gatys_args(pics, out, "--precision", "fp8"), "--precision")
    fails(capsys, gatys_args(pics, out, "--strength", "0.5"), "--strength", "gatys")
    fails(capsys, gatys_args(pics, out, "--model", "candy"), "one fixed style")
    fails(capsys, gatys_args(pics, out, "--no-such-flag"), "unrecognized")
    fails(capsys, ["--content", str(pics["content"]), "-o", str(out)], "--style")
    fails(capsys, ["--method", "johnson", "--content", str(pics["content"]), "-o", str(out)], "--model")
    fails(
        capsys,
        [
            "--method",
            "cyclegan",
            "--model",
            "m.onnx",
            "--content",
            str(pics["content"]),
            "-o",
            str(out),
            "--steps",
            "5",
        ],
        "--steps",
    )
    assert not out.exists()


def zero_sized_png() -> bytes:
    """A PNG whose header says 0x0 pixels (PIL refuses to write one), checksums correct."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_zero_sized_image_is_refused(capsys, pics, tmp_path):
    empty = tmp_path / "empty.png"
    try:
        Image.new("RGB", (0, 0)).save(empty)
    except (ValueError, SystemError, OSError):
        empty.write_bytes(zero_sized_png())  # PIL cannot write one; a hand-made header says 0x0
    fails(capsys, ["--content", str(empty), "--style", str(pics["style"]), "-o", str(tmp_path / "o.png")], str(empty))
    fails(capsys, ["--content", str(pics["content"]), "--style", str(empty), "-o", str(tmp_path / "o.png")], str(empty))
    assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_without_a_gpu_is_refused(capsys, pics, tmp_path):
    fails(capsys, gatys_args(pics, tmp_path / "o.png")[:-1] + ["cuda"], "no CUDA GPU")


def test_torchvision_weights_offline_is_refused(capsys, pics, tmp_path, monkeypatch):
    import torchvision.models

    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models, "vgg19", offline)
    fails(capsys, gatys_args(pics, tmp_path / "o.png", "--vgg", "torchvision"), "torchvision")


def test_nan_loss_leaves_the_existing_output_alone(capsys, pics, tmp_path, monkeypatch):
    import realtime.core.gatys

    out = tmp_path / "keep.png"
    out.write_bytes(b"previous result")
    monkeypatch.setattr(
        realtime.core.gatys.GatysObjective, "__call__", lambda self, image: (image * float("nan")).sum()
    )
    assert still.main(gatys_args(pics, out, "--size", "32", "--steps", "2", "--force")) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # the progress bar, then one error line
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert "loss became nan at step 1" in lines[-1]
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["keep.png", "content.png", "style.png", "style2.png"])


def fake_model_still(monkeypatch) -> list[dict]:
    calls: list[dict] = []

    def stylize_image(content_rgb, model, *, max_memory, progress, **kwargs):
        assert max_memory >= 64 << 20 and callable(progress)  # the tiling budget and its progress bar
        calls.append(dict(shape=content_rgb.shape, model=model, **kwargs))
        return 255 - content_rgb

    module = types.ModuleType("realtime.model_still")
    module.stylize_image = stylize_image
    monkeypatch.setitem(sys.modules, "realtime.model_still", module)
    return calls


def test_model_methods_hand_their_settings_to_model_still(capsys, pics, tmp_path, monkeypatch):
    calls = fake_model_still(monkeypatch)
    out = tmp_path / "m.png"
    assert (
        still.main(
            [
                "--method",
                "cyclegan",
                "--model",
                "h2z.onnx",
                "--content",
                str(pics["content"]),
                "-o",
                str(out),
                "--strength",
                "0.5",
                "--input-range",
                "-1-1",
                "--device",
                "cpu",
                "--provider",
                "CPUExecutionProvider",
            ]
        )
        == 0
    )
    assert calls[-1] == dict(
        shape=(24, 32, 3),
        model="h2z.onnx",
        size=None,
        strength=0.5,
        preserve_color=False,
        device="cpu",
        provider="CPUExecutionProvider",
        input_range="-1-1",
        family="cyclegan",
        style=None,
    )
    assert np.array_equal(read_image(out), 255 - read_image(pics["content"]))
    assert (
        still.main(
            ["--model", "candy", "--content", str(pics["content"]), "-o", str(out), "--size", "64", "--preserve-color"]
            + ["--force"]  # the same output again
        )
        == 0
    )
    assert calls[-1]["family"] is None and calls[-1]["size"] == 64 and calls[-1]["preserve_color"] is True
    assert calls[-1]["strength"] == 1.0
    capsys.readouterr()
    fails(
        capsys,
        ["--model", "candy", "--content", str(pics["content"]), "-o", str(out), "--strength", "1.5", "--force"],
        "--strength",
    )
    fails(
        capsys,
        ["--model", str(pics["content"]), "--content", str(pics["style"]), "-o", str(pics["content"])],
        "refusing to overwrite",
    )


def test_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        still.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--method" in text and "--style-blend" in text


def test_gatys_path_imports_stay_lean(pics, tmp_path):
    """No onnx, OpenCV, torchvision or torch._dynamo (a torch.optim optimiser pulls it in) for a Gatys still."""
    import subprocess

    code = (
        "import sys; from realtime.cli import still; "
        f"rc = still.main(['--content', {str(pics['content'])!r}, '--style', {str(pics['style'])!r}, "
        f"'--size', '32', '--steps', '2', '--device', 'cpu', '-o', {str(tmp_path / 'o.png')!r}]); "
        "heavy = [m for m in ('torch._dynamo', 'cv2', 'onnx', 'onnxruntime', 'torchvision', 'av') "
        "if m in sys.modules]; print('HEAVY', heavy); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(still.__file__).parents[2],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout


@pytest.mark.parametrize("existing", [False, True])
def test_gatys_ctrl_c_saves_the_current_image(existing, capsys, pics, tmp_path, monkeypatch):
    import realtime.core.gatys

    real_step, steps = realtime.core.gatys._one_step, []

    def step(*args):
        steps.append(1)
        if len(steps) == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the fourth step
        return real_step(*args)

    monkeypatch.setattr(realtime.core.gatys, "_one_step", step)
    out = tmp_path / "g.png"
    if existing:
        out.write_bytes(b"an earlier result")
    extra = ("--size", "32", "--steps", "50", *(["--force"] if existing else []))
    assert still.main(gatys_args(pics, out, *extra)) == 130
    err = capsys.readouterr().err
    saved = tmp_path / "g.partial.png" if existing else out
    assert "interrupted at step 3/50: saved the current image (32x24" in err and f") to {saved}" in err
    assert read_image(saved).shape == (24, 32, 3)
    if existing:
        assert out.read_bytes() == b"an earlier result" and f"{out} is unchanged" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
