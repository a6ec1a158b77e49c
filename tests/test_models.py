"""realtime.core.model_zoo and realtime.model_still: names, weights/, the download cache, checksums, offline errors.

Published models are served by a local http.server on 127.0.0.1 from a temporary folder,
so the real download path runs without internet.
"""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from lively_nets import lively_johnson

from export import export_model
from realtime.backends import OnnxStylizer, TorchStylizer
from realtime.backends.loader import load_stylizer
from realtime.core.checkpoint import save_checkpoint
from realtime.core.contract import johnson_contract
from realtime.core.download import sha256_of
from realtime.core.errors import UserError
from realtime.core.model_zoo import (
    REGISTRY,
    PublishedModel,
    default_registry,
    format_model_table,
    list_models,
    lookup,
    resolve_model,
)
from realtime.core.nets import ResnetGenerator
from realtime.model_still import stylize_image


class Server:
    """Serves ``root`` on 127.0.0.1 and counts the requests."""

    def __init__(self, root: Path) -> None:
        self.root, self.requests = root, []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A served folder with an exported ONNX model, a CycleGAN .pth and a pytorch/examples-style zip."""
    root = tmp_path_factory.mktemp("served")
    ckpt = save_checkpoint(root / "src.pth", lively_johnson(), johnson_contract(name="toy"))
    export_model(ckpt, root / "toy-9.onnx")
    torch.manual_seed(1)
    torch.save(ResnetGenerator(ngf=8, n_blocks=1).state_dict(), root / "toy_gan.pth")
    state = lively_johnson(seed=2).state_dict()
    state["in1.running_mean"] = torch.zeros(16)  # legacy key, as in the published files
    torch.save(state, root / "mosaic.pth")
    with zipfile.ZipFile(root / "saved_models.zip", "w") as zf:
        zf.write(root / "mosaic.pth", "saved_models/mosaic.pth")
        zf.writestr("saved_models/candy.pth", b"unused")
    server = Server(root)
    yield server, root
    server.httpd.shutdown()


@pytest.fixture
def setup(published, tmp_path, monkeypatch):
    server, root = published
    server.requests.clear()
    monkeypatch.setenv("NST_CACHE", str(tmp_path / "cache"))
    registry = {
        "toy-9": PublishedModel(
            "toy-9",
            server.url + "toy-9.onnx",
            "johnson",
            "onnx",
            "test",
            sha256=sha256_of(root / "toy-9.onnx"),
            size=(root / "toy-9.onnx").stat().st_size,
        ),
        "toy_gan": PublishedModel("toy_gan", server.url + "toy_gan.pth", "cyclegan", "pth", "test"),
        "mosaic": PublishedModel(
            "mosaic", server.url + "saved_models.zip?dl=1", "johnson", "zip", "test", member="mosaic.pth"
        ),
    }
    weights = tmp_path / "weights"
    weights.mkdir()
    kw = {"registry": registry, "weights_dirs": [weights], "cache": tmp_path / "cache" / "models", "progress": False}
    return server, root, weights, kw


def test_registry_lists_the_published_models():
    zoo = ["mosaic-9", "candy-9", "rain-princess-9", "udnie-9", "pointilism-9"]
    gans = [
        "horse2zebra",
        "zebra2horse",
        "monet2photo",
        "style_monet",
        "style_cezanne",
        "style_ukiyoe",
        "style_vangogh",
        "summer2winter_yosemite",
        "winter2summer_yosemite",
        "apple2orange",
        "orange2apple",
        "map2sat",
        "sat2map",
        "facades_label2photo",
        "iphone2dslr_flower",
    ]
    assert set(zoo + gans + ["mosaic", "candy", "rain-princess", "udnie"]) <= set(REGISTRY)
    assert all(REGISTRY[n].sha256 and REGISTRY[n].format == "onnx" for n in zoo)
    assert REGISTRY["mosaic-9"].url.endswith("fast_neural_style/model/mosaic-9.onnx")
    assert (
        REGISTRY["horse2zebra"].url == "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth"
    )
    assert REGISTRY["rain-princess"].member == "rain_princess.pth" and "dropbox" in REGISTRY["udnie"].url
    assert lookup("Rain_Princess", REGISTRY).name == "rain-princess"
    assert all(m.licence for m in REGISTRY.values())


def test_mirror_env_rewrites_urls(monkeypatch):
    monkeypatch.setenv("NST_MODEL_MIRROR", "http://mirror.local/nst/")
    registry = default_registry()
    assert registry["mosaic-9"].url == "http://mirror.local/nst/mosaic-9.onnx"
    assert registry["udnie"].url == "http://mirror.local/nst/saved_models.zip"


def test_weights_folder_wins_over_the_registry(setup):
    server, root, weights, kw = setup
    (weights / "toy-9.pth").write_bytes((root / "src.pth").read_bytes())
    assert resolve_model("toy-9", **kw) == weights / "toy-9.pth"
    (weights / "toy-9.onnx").write_bytes((root / "toy-9.onnx").read_bytes())
    assert resolve_model("toy-9", **kw) == weights / "toy-9.onnx"  # .onnx before .pth
    assert resolve_model("toy-9.pth", **kw) == weights / "toy-9.pth"  # a file name found in weights/
    assert server.requests == []


def test_download_then_cache(setup, rng):
    server, root, _, kw = setup
    path = resolve_model("toy-9", **kw)
    assert path == kw["cache"] / "toy-9.onnx" and sha256_of(path) == sha256_of(root / "toy-9.onnx")
    assert resolve_model("TOY-9", **kw) == path
    assert len(server.requests) == 1  # the second resolve used the cache
    stylizer = load_stylizer("toy-9", device="cpu", **kw)
    assert isinstance(stylizer, OnnxStylizer) and stylizer.name == "toy"
    assert stylizer(rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)).shape == (30, 41, 3)


def test_damaged_cache_is_detected_and_fetched_again(setup):
    server, root, _, kw = setup
    path = resolve_model("toy-9", **kw)  # published digest known
    path.write_bytes(b"garbage" + path.read_bytes()[7:])
    assert sha256_of(resolve_model("toy-9", **kw)) == sha256_of(root / "toy-9.onnx")
    gan = resolve_model("toy_gan", **kw)  # no published digest: the one recorded at download is used
    assert (gan.parent / "toy_gan.pth.sha256").read_text().strip() == sha256_of(root / "toy_gan.pth")
    with open(gan, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    assert sha256_of(resolve_model("toy_gan", **kw)) == sha256_of(root / "toy_gan.pth")
    assert len(server.requests) == 4


def test_wrong_published_digest_fails_and_leaves_nothing(setup):
    _, _, _, kw = setup
    entry = kw["registry"]["toy-9"]
    kw["registry"]["toy-9"] = PublishedModel(entry.name, entry.url, "johnson", "onnx", "test", sha256="0" * 64)
    with pytest.raises(UserError, match="SHA-256"):
        resolve_model("toy-9", **kw)
    assert not (kw["cache"] / "toy-9.onnx").exists()


def test_zip_member_is_extracted_and_runs(setup, rng):
    server, _, _, kw = setup
    path = resolve_model("mosaic", **kw)
    assert path.name == "mosaic.pth" and (kw["cache"] / "saved_models.zip").is_file()
    assert not (kw["cache"] / "candy.pth").exists()  # only the one asked is extracted
    stylizer = load_stylizer("mosaic", device="cpu", **kw)
    assert isinstance(stylizer, TorchStylizer) and stylizer.contract.family == "johnson"
    assert stylizer(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)).std() > 5
    assert len(server.requests) == 1


def test_offline_error_lists_local_models(setup, tmp_path):
    _, root, weights, kw = setup
    (weights / "my_style.onnx").write_bytes((root / "toy-9.onnx").read_bytes())
    resolve_model("toy_gan", **kw)
    kw["registry"]["toy-9"] = PublishedModel("toy-9", "http://127.0.0.1:9/toy-9.onnx", "johnson", "onnx", "t")
    with pytest.raises(UserError) as info:
        resolve_model("toy-9", **kw)
    message = str(info.value)
    assert "offline" in message and "my_style" in message and "toy_gan" in message and "\n" not in message
    cached = kw["cache"] / "toy_gan.pth"
    cached.write_bytes(b"damaged")
    kw["registry"]["toy_gan"] = PublishedModel("toy_gan", "http://127.0.0.1:9/toy_gan.pth", "cyclegan", "pth", "t")
    with pytest.raises(UserError, match="damaged"):
        resolve_model("toy_gan", **kw)


def test_unknown_names_and_paths(setup, tmp_path):
    _, _, _, kw = setup
    with pytest.raises(UserError, match="did you mean 'mosaic'"):
        resolve_model("mosiac", **kw)
    with pytest.raises(UserError, match="did you mean 'mosaic-9'"):
        resolve_model("mosaic9", registry=REGISTRY, weights_dirs=[], cache=tmp_path)
    with pytest.raises(UserError, match="no such model file"):
        resolve_model(str(tmp_path / "nope.onnx"), **kw)
    with pytest.raises(UserError, match="folder"):
        resolve_model(str(tmp_path), **kw)


def test_list_models_table(setup):
    _, root, weights, kw = setup
    (weights / "mine.pth").write_bytes((root / "src.pth").read_bytes())
    resolve_model("toy-9", **kw)
    rows = {r.name: r for r in list_models(kw["registry"], kw["weights_dirs"], kw["cache"])}
    assert (rows["mine"].where, rows["toy-9"].where, rows["mosaic"].where) == ("weights", "cache", "download")
    table = format_model_table(list(rows.values()))
    assert table.splitlines()[0].split() == ["NAME", "FAMILY", "WHERE", "NOTE"]
    assert "mine" in table and "toy_gan" in table and "cyclegan" in table
    assert "horse2zebra" in format_model_table(list_models(weights_dirs=[], cache=kw["cache"]))


def test_load_stylizer_picks_the_backend(setup, tmp_path, rng, monkeypatch):
    import realtime.backends.onnx_backend as onnx_backend

    _, root, _, kw = setup
    frame = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    assert isinstance(load_stylizer(str(root / "src.pth"), device="cpu"), TorchStylizer)
    via_onnx = load_stylizer(str(root / "src.pth"), device="cpu", backend="onnx")  # exported once, cached
    assert isinstance(via_onnx, OnnxStylizer) and via_onnx.path.parent == tmp_path / "cache" / "onnx"
    assert np.abs(via_onnx(frame).astype(int) - load_stylizer(str(root / "src.pth"))(frame)).max() <= 2
    assert load_stylizer(str(root / "src.pth"), backend="onnx").path == via_onnx.path
    with pytest.raises(UserError, match="is ONNX"):
        load_stylizer(str(root / "toy-9.onnx"), backend="torch")
    with pytest.raises(UserError, match="backend must be one of"):
        load_stylizer(str(root / "toy-9.onnx"), backend="tensorflow")
    ranged = load_stylizer(str(root / "toy-9.onnx"), input_range="-1-1", device="cpu")
    assert ranged.contract.value_range == (-1.0, 1.0) and ranged.providers == ["CPUExecutionProvider"]
    assert load_stylizer(str(root / "src.pth"), input_range="-1-1").contract.value_range == (-1.0, 1.0)
    # as on a machine whose onnxruntime has only the CPU (onnxruntime-gpu lists TensorRT and CUDA)
    monkeypatch.setattr(onnx_backend.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(UserError, match="TensorrtExecutionProvider is not available"):
        load_stylizer(str(root / "toy-9.onnx"), provider="tensorrt")  # asked for by name: strict
    assert load_stylizer(str(root / "toy-9.onnx"), provider="tensorrt", strict_provider=False).providers == [
        "CPUExecutionProvider"
    ]
    assert load_stylizer(str(root / "toy-9.onnx"), device="cuda").providers == ["CPUExecutionProvider"]


def test_stylize_image(setup, rng):
    _, root, _, _ = setup
    model = str(root / "src.pth")
    content = rng.integers(0, 256, (61, 90, 3), dtype=np.uint8)
    full = stylize_image(content, model, device="cpu")
    assert full.shape == content.shape and full.dtype == np.uint8 and full.std() > 5
    loaded = load_stylizer(model, device="cpu")  # reused below, as a command stylising many images would
    small = stylize_image(content, model, size=45, stylizer=loaded)
    assert small.shape == (30, 45, 3)
    untouched = stylize_image(content, model, strength=0.0, stylizer=loaded)
    np.testing.assert_array_equal(untouched, content)
    half = stylize_image(content, model, strength=0.5, stylizer=loaded).astype(int)
    assert np.abs(half - (full.astype(int) + content) / 2).max() <= 1
    kept = stylize_image(content, model, preserve_color=True, stylizer=loaded)
    assert kept.shape == content.shape and np.abs(kept.astype(int) - full).mean() > 1
    assert stylize_image(content, str(root / "toy-9.onnx"), family="johnson").shape == content.shape
    with pytest.raises(UserError, match="is a johnson model, not a cyclegan model"):
        stylize_image(content, model, family="cyclegan", stylizer=loaded)
    with pytest.raises(UserError, match="strength"):
        stylize_image(content, model, strength=1.5, stylizer=loaded)
    with pytest.raises(UserError, match="uint8"):
        stylize_image(content.astype(np.float32), model, stylizer=loaded)


def test_published_prefix_reaches_a_shadowed_model(setup):
    server, root, weights, kw = setup
    (weights / "toy-9.onnx").write_bytes((root / "toy-9.onnx").read_bytes())
    assert resolve_model("toy-9", **kw) == weights / "toy-9.onnx" and server.requests == []
    assert resolve_model("published:toy-9", **kw) == kw["cache"] / "toy-9.onnx"  # the registry's, downloaded
    with pytest.raises(UserError, match="published:toy-8: no published model of that name; did you mean 'toy-9'"):
        resolve_model("published:toy-8", **kw)
    rows = {(r.name, r.where): r for r in list_models(kw["registry"], kw["weights_dirs"], kw["cache"])}
    assert rows[("toy-9", "cache")].shadowed_by == str(weights / "toy-9.onnx")
    assert rows[("toy-9", "weights")].family == "johnson"  # read from the file's own metadata
    table = format_model_table(list(rows.values()), cache=kw["cache"])
    assert "published:toy-9" in table and "shadowed by toy-9.onnx" in table


def test_suggestions_name_each_model_once(setup):
    _, root, weights, kw = setup
    (weights / "toy-9.onnx").write_bytes((root / "toy-9.onnx").read_bytes())  # the same name, local and published
    with pytest.raises(UserError) as info:
        resolve_model("toy9", **kw)
    assert str(info.value).count("'toy-9'") == 1, str(info.value)
