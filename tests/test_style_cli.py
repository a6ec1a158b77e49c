"""--style and --list-styles on the commands, and the camera's style keys, with a conditioned stand-in model."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import IdentityStylizer, TintStylizer
from video_clips import install_fake_models, make_clip, read_video

from realtime import model_still
from realtime.cli import cam, still, video
from realtime.core.images import read_image, write_image
from realtime.pipeline import run
from realtime.stages.style_fade import StyleSchedule


def grey_clip(tmp_path, frames=6):
    return make_clip(tmp_path / "clip.mp4", frames=frames, fps=10, width=32, height=24)


def test_video_style_blend_reaches_the_model(tmp_path, monkeypatch):
    made = []
    install_fake_models(monkeypatch, lambda m: made.append(TintStylizer()) or made[-1])
    src, out = grey_clip(tmp_path), tmp_path / "out.mp4"
    argv = [str(src), "-m", "tint", "-o", str(out), "--style", "green:0.5,blue:0.5", "--lossless", "--no-progress"]
    assert video.main(argv) == 0
    assert made[0].offset() == pytest.approx(50.0)  # (40 + 60) / 2
    a, b = read_video(src), read_video(out)
    diff = b.frames[0].astype(int) - a.frames[0].astype(int)
    assert np.median(diff) == 50


def test_style_on_a_one_style_model_is_one_line(tmp_path, monkeypatch, capsys):
    install_fake_models(monkeypatch, lambda m: IdentityStylizer())
    src = grey_clip(tmp_path)
    assert video.main([str(src), "-m", "mosaic", "-o", str(tmp_path / "o.mp4"), "--style", "candy"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--style does not apply to model 'mosaic'" in err
    assert not (tmp_path / "o.mp4").exists()


def test_unknown_style_names_the_flag(tmp_path, monkeypatch, capsys):
    install_fake_models(monkeypatch, lambda m: TintStylizer())
    assert video.main([str(grey_clip(tmp_path)), "-m", "tint", "--style", "purple"]) == 2
    assert "--style 'purple' is not one of red, green, blue" in capsys.readouterr().err


def test_list_styles_on_video_cam_and_still(monkeypatch, capsys):
    install_fake_models(monkeypatch, lambda m: TintStylizer())
    assert video.main(["--list-styles", "-m", "tint"]) == 0
    assert capsys.readouterr().out.split() == ["0", "red", "1", "green", "2", "blue"]
    assert cam.main(["--list-styles", "-m", "tint"]) == 0
    assert capsys.readouterr().out.split()[1:] == ["0", "red", "1", "green", "2", "blue"]
    monkeypatch.setattr(model_still, "load_stylizer", lambda model, **kwargs: TintStylizer())
    assert still.main(["--list-styles", "--model", "tint"]) == 0
    assert "2\tblue" in capsys.readouterr().out


def test_still_style_index(tmp_path, monkeypatch):
    monkeypatch.setattr(model_still, "load_stylizer", lambda model, **kwargs: TintStylizer())
    photo = tmp_path / "p.png"
    write_image(photo, np.full((16, 20, 3), 100, np.uint8))
    out = tmp_path / "o.png"
    assert still.main(["--model", "tint", "--style", "2", "--content", str(photo), "-o", str(out)]) == 0
    assert int(read_image(out)[0, 0, 0]) == 160


def test_camera_style_keys_cross_fade_without_stalling():
    """`]` moves to the next style over the schedule's frames; frames keep flowing meanwhile."""
    model = TintStylizer()
    models = cam.ModelCycle([model])
    schedule = StyleSchedule(frames=4)
    state = cam.CamState(styles=len(model.style_names()))
    from realtime.stages import build_stages

    stages = build_stages(stabilizer_available=True)
    controls = cam.Controls(state, models, stages.strength, stages.color, stages.stabilizer, ".", schedule)
    controls.on_key(ord("]"))
    assert controls.state.style == 1 and "style [2/3] green" in controls.status()
    sink: list[np.ndarray] = []
    frames = [np.full((8, 8, 3), 100, np.uint8) for _ in range(6)]
    run(frames, models, sink, [schedule, *stages.ordered], queue_size=1)
    levels = [int(f[0, 0, 0]) for f in sink]
    assert levels[-1] == 140 and len(set(levels)) >= 3  # red (120) -> green (140) through blends
    assert levels == sorted(levels)


def test_contact_sheet_shows_every_style_labelled(tmp_path, monkeypatch, capsys):
    install_fake_models(monkeypatch, lambda m: TintStylizer())
    photo, sheet = tmp_path / "p.png", tmp_path / "sheet.png"
    write_image(photo, np.full((30, 40, 3), 100, np.uint8))
    assert still.main(["--model", "tint", "--content", str(photo), "--contact-sheet", str(sheet)]) == 0
    image = read_image(sheet).astype(int)
    # photo, red, green, blue: two rows of two 40x30 tiles (6 px gaps), each over its label band
    rows = [y for y in range(image.shape[0]) if (image[y, 6:46] == image[y, 6, 0]).all() and image[y, 6, 0] >= 100]
    assert image.shape[1] == 3 * 6 + 2 * 40 and len(rows) == 60
    tiles = [
        image[rows[0] + 5, 6 + 20],
        image[rows[0] + 5, 52 + 20],
        image[rows[30] + 5, 6 + 20],
        image[rows[30] + 5, 52 + 20],
    ]
    assert [int(t[0]) for t in tiles] == [100, 120, 140, 160]
    band = image[rows[29] + 1 : rows[30] - 6, 6:46]
    assert band.max() > 200 and np.median(band) < 60  # white text on the dark band under the first tile
    picked = tmp_path / "picked.png"
    argv = [
        "--model",
        "tint",
        "--content",
        str(photo),
        "--contact-sheet",
        str(picked),
        "--style",
        "blue",
        "red:1,blue:1",
    ]
    assert still.main([*argv, "--columns", "3"]) == 0
    image = read_image(picked).astype(int)
    assert image.shape[1] == 4 * 6 + 3 * 40 and [int(image[12, 26 + 46 * i, 0]) for i in range(3)] == [100, 160, 140]


def test_contact_sheet_of_a_one_style_model_is_one_line(tmp_path, monkeypatch, capsys):
    install_fake_models(monkeypatch, lambda m: IdentityStylizer())
    photo, sheet = tmp_path / "p.png", tmp_path / "sheet.png"
    write_image(photo, np.full((16, 20, 3), 100, np.uint8))
    assert still.main(["--model", "mosaic", "--content", str(photo), "--contact-sheet", str(sheet)]) == 2
    assert "--style does not apply to model 'mosaic'" in capsys.readouterr().err and not sheet.exists()
    assert still.main(["--model", "mosaic", "--content", str(photo), "--contact-sheet", str(sheet), "-o", "x.png"]) == 2
    assert "--contact-sheet is the output; leave out --output" in capsys.readouterr().err
