"""Turn image files into a normalised batch for prediction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from resnet_lab.errors import UserError, first_line


def float_pixels_refused(paths: Sequence[str | Path]) -> UserError:
    """Floating-point pixels (PIL mode F, e.g. a float TIFF) have no known range: PIL's convert clips
    them to 0..255, which turns an image of values in [0, 1] black."""
    shown = ", ".join(map(str, paths[:3])) + (", ..." if len(paths) > 3 else "")
    return UserError(f"{shown} {'holds' if len(paths) == 1 else 'hold'} floating-point pixels (PIL mode F), whose "
                     "range resnet-lab cannot know; save them as 8- or 16-bit images")


def load_image(path: str | Path, mode: str) -> Image.Image:
    """Decode an image file as `mode` ("L" or "RGB").

    16-bit grayscale (PIL modes I;16* and I) is scaled to 8 bits first: PIL's own convert
    clips every value above 255, which turns almost all of a 16-bit image white. Floating-point
    pixels are refused (``float_pixels_refused``). An image with transparency (an alpha channel,
    or a palette or colour key marked transparent) is composited onto white first, as an image
    viewer shows it: convert drops the alpha, which turns a black shape on a transparent
    background (its colours all 0) into an all-black image.
    """
    with Image.open(path) as im:
        if im.mode == "F":
            raise float_pixels_refused([path])
        if im.mode == "I" or im.mode.startswith("I;16"):
            wide = np.clip(np.asarray(im, dtype=np.float64), 0, 65535)
            return Image.fromarray(np.round(wide / 257).astype(np.uint8)).convert(mode)
        if im.has_transparency_data:
            im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
        return im.convert(mode)


def preprocess_images(
    paths: Sequence[str | Path],
    *,
    image_size: int | tuple[int, int],
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    transform: Callable[[Image.Image], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Load images of any size/format as a float32 (N, in_channels, height, width) batch, ``image_size``
    being (height, width) or one side of a square.

    Each image is converted to grayscale (1 channel) or RGB (3), resized with bilinear filtering,
    scaled to [0, 1] and normalised with the model's training mean/std;
    or, given ``transform`` (decoded image -> normalised tensor), passed through it instead.
    """
    if in_channels not in (1, 3):
        raise UserError(f"models with {in_channels} input channels are not supported for prediction; use 1 or 3")
    if not paths:
        raise UserError("no image files given; pass at least one image path")
    mode = "L" if in_channels == 1 else "RGB"
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    arrays = []
    for path in paths:
        if str(path) == "":  # Path("") is ".", which was then refused as a folder
            raise UserError("an image path is empty (an unset shell variable?); give image files")
        path = Path(path).expanduser()
        if path.is_dir():
            raise UserError(f"{path} is a folder; give image files (e.g. {path}/*.png)")
        if not path.is_file():
            raise UserError(f"image file not found: {path}; check the path")
        try:
            im = load_image(path, mode)
            if transform is not None:
                arrays.append(transform(im))
                continue
            im = im.resize((width, height), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(im, dtype=np.uint8))
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - PIL raises many types for unreadable files
            if isinstance(e, OSError) and e.errno is not None:  # the machine refused the read, not the image:
                raise  # one line naming the file, exit 1 (PIL's own errors carry no errno)
            reason = first_line(e)
            raise UserError(f"cannot read image {path} ({reason}); check that it is a valid image file") from None
    if transform is not None:
        return torch.stack(arrays).contiguous()
    batch = torch.from_numpy(np.stack(arrays))
    batch = batch.unsqueeze(1) if in_channels == 1 else batch.permute(0, 3, 1, 2)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((batch.to(torch.float32) / 255.0 - mean_t) / std_t).contiguous()
