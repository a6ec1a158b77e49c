"""The history of generated images that CycleGAN's discriminators learn from (Shrivastava et al. 2017).

Zhu et al. (2017, section 4) update each discriminator "using a history of generated images
rather than the ones produced by the latest generators", a buffer of 50. This is the authors'
``ImagePool``: until the pool is full every fake is stored and returned as is; afterwards each
fake is, with probability 0.5, swapped with a random stored one (the old one is returned, the
new one kept), and otherwise returned unchanged.

The pool draws from its own ``torch.Generator``, so a run is reproducible and the pool's state
(images and generator) is saved in the resumable state file.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    """A buffer of up to ``size`` past generator outputs, each ``(3, H, W)`` in -1..1.

    ``size`` 0 disables the pool (:meth:`query` returns its input). Images are stored detached,
    as float32, on the device they arrive on.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = int(size)
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch for the discriminator: ``(B, 3, H, W)`` in, ``(B, 3, H, W)`` float32 out (detached).

        Each image of the batch is treated on its own, as in the authors' code.
        """
        images = images.detach().float()
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                slot = int(torch.randint(self.size, (), generator=self.generator).item())
                out.append(self.images[slot])
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """Stored images ``(N, 3, H, W)`` float32 on CPU (``N`` may be 0) and the generator state."""
        stacked = torch.stack([im.cpu() for im in self.images]) if self.images else torch.zeros(0)
        return {"size": self.size, "images": stacked, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        """Restore :meth:`state_dict`'s output; images are moved to ``device``."""
        if int(state["size"]) != self.size:
            raise ValueError(f"the saved image pool holds up to {state['size']} images, this one {self.size}")
        images = state["images"]
        self.images = [im.to(device) for im in images] if images.numel() else []
        self.generator.set_state(state["generator"])
