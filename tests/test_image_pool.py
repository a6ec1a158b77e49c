"""The 50-image history pool behaves as in the paper and the authors' code."""

from __future__ import annotations

import pytest
import torch

from train.image_pool import ImagePool


def image(value: float) -> torch.Tensor:
    """A ``(1, 3, 4, 4)`` batch whose pixels all equal ``value`` (so images are identifiable)."""
    return torch.full((1, 3, 4, 4), float(value))


def ids(batch: torch.Tensor) -> list[float]:
    return [float(b[0, 0, 0]) for b in batch]


def test_returns_inputs_until_full():
    pool = ImagePool(size=5, seed=0)
    for i in range(5):
        assert ids(pool.query(image(i))) == [i]
    assert len(pool) == 5


def test_once_full_half_are_swapped_with_a_stored_image():
    pool = ImagePool(size=50, seed=123)
    for i in range(50):
        pool.query(image(i))
    swapped = 0
    for i in range(50, 1050):
        before = sorted(ids(torch.stack(pool.images)))
        got = ids(pool.query(image(i)))[0]
        after = sorted(ids(torch.stack(pool.images)))
        assert len(pool) == 50
        if got == i:  # returned as is; the pool is untouched
            assert after == before
        else:  # an older image came back and the new one took its place
            swapped += 1
            assert got in before and got < i
            assert after == sorted([x for x in before if x != got] + [i])
    assert 400 < swapped < 600  # probability 0.5


def test_seeded_pools_agree_and_state_round_trips():
    a, b = ImagePool(size=4, seed=7), ImagePool(size=4, seed=7)
    for i in range(10):
        assert ids(a.query(image(i))) == ids(b.query(image(i)))
    c = ImagePool(size=4, seed=99)
    c.load_state_dict(a.state_dict())
    for i in range(10, 40):
        assert ids(a.query(image(i))) == ids(c.query(image(i)))


def test_state_dict_loads_weights_only(tmp_path):
    pool = ImagePool(size=3, seed=0)
    pool.query(torch.rand(2, 3, 4, 4))
    torch.save(pool.state_dict(), tmp_path / "pool.pth")
    fresh = ImagePool(size=3, seed=1)
    fresh.load_state_dict(torch.load(tmp_path / "pool.pth", weights_only=True))
    assert len(fresh) == 2 and all(torch.equal(x, y) for x, y in zip(fresh.images, pool.images))
    with pytest.raises(ValueError):
        ImagePool(size=5).load_state_dict(pool.state_dict())


def test_batches_are_handled_per_image_and_detached():
    pool = ImagePool(size=3, seed=0)
    fakes = torch.rand(2, 3, 4, 4, requires_grad=True)
    out = pool.query(fakes)
    assert out.shape == (2, 3, 4, 4) and not out.requires_grad and out.dtype == torch.float32
    assert len(pool) == 2
    out = pool.query(torch.rand(2, 3, 4, 4).to(torch.bfloat16))
    assert out.shape == (2, 3, 4, 4) and out.dtype == torch.float32 and len(pool) == 3


def test_size_zero_is_a_pass_through():
    pool = ImagePool(size=0)
    batch = torch.rand(3, 3, 4, 4)
    assert torch.equal(pool.query(batch), batch) and len(pool) == 0
