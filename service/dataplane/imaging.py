"""Safe image decoding and mask encoding (the only module that touches Pillow).

Limits are checked from the header, before any pixel is decoded, so a decompression bomb costs
nothing. Large JPEGs are decoded in the DCT domain at a reduced scale (``Image.draft``) when the
network input is much smaller than the frame; the caller keeps the original size for geometry.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError

SUPPORTED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
SUPPORTED_MEDIA_TYPES = frozenset(SUPPORTED_FORMATS.values())
# EXIF orientations that swap width and height.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}

# Our own pixel limit is checked first; this only keeps Pillow from raising its own bomb error.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class DecodedImage:
    """RGB pixels (possibly reduced by draft decoding) and the upright original size."""

    rgb: np.ndarray  # (height, width, 3) uint8
    width: int  # original width, after EXIF orientation
    height: int


@dataclass(frozen=True)
class OpenedImage:
    """A parsed header whose pixels are not decoded yet; ``width``/``height`` are upright."""

    image: Image.Image
    width: int
    height: int
    transposed: bool


def open_image(data: bytes, *, max_pixels: int) -> OpenedImage:
    """Parse the header and check format and pixel limits without decoding pixels."""
    if not data:
        raise InvalidInputError("empty image")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidInputError("the body is not a decodable image") from None
    except Exception as exc:  # Pillow raises assorted errors on hostile headers
        raise InvalidInputError(f"the image header is invalid: {type(exc).__name__}") from None
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedMediaTypeError(
            f"image format {image.format} is not supported",
            supported=sorted(SUPPORTED_MEDIA_TYPES),
        )
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"image has {width}x{height} pixels, over the limit of {max_pixels}",
            limit=max_pixels,
        )
    orientation = _orientation(image)
    transposed = orientation in _TRANSPOSING_ORIENTATIONS
    if transposed:
        width, height = height, width
    return OpenedImage(image, width, height, transposed)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation found in the header. A PNG's ``getexif`` would decode the whole
    image to look for an eXIf chunk after the pixels; only one before them is read."""
    exif = Image.Exif()
    try:
        if image.format == "PNG":
            if "exif" in image.info:
                exif.load(image.info["exif"])
        else:
            exif = image.getexif()
        return int(exif.get(0x0112, 1))
    except Exception:  # a corrupt EXIF block is ignored, as browsers do
        return 1


def load_rgb(opened: OpenedImage, size: tuple[int, int] | None = None) -> DecodedImage:
    """Decode to upright RGB, resized (bilinear) to ``size`` (width, height) when given.

    The resize happens on Pillow's image, before any numpy copy, so a large frame is held once
    at full size, not three times; a JPEG decodes at a reduced scale still at least ``size``.
    """
    image = opened.image
    if image.format == "JPEG" and size is not None:
        want_w, want_h = size
        if opened.transposed:
            want_w, want_h = want_h, want_w
        image.draft("RGB", (want_w, want_h))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            # each full-size step closes the one before: a frame is held about once at a time
            upright = _replacing(image, ImageOps.exif_transpose(image) or image)
            rgb = _replacing(upright, _to_rgb(upright))
            if size is not None and rgb.size != size:
                rgb = _replacing(rgb, rgb.resize(size, Image.Resampling.BILINEAR))
            pixels = np.asarray(rgb, dtype=np.uint8)
            rgb.close()
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidInputError(f"the image data is corrupt or truncated: {exc}") from None
    return DecodedImage(rgb=pixels, width=opened.width, height=opened.height)


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode at full resolution."""
    return load_rgb(open_image(data, max_pixels=max_pixels))


def _replacing(old: Image.Image, new: Image.Image) -> Image.Image:
    if new is not old:
        old.close()
    return new


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit and 32-bit grey: scale the full range to 8 bits instead of clipping.
        grey = np.asarray(image, dtype=np.float32)
        top = float(grey.max()) or 1.0
        grey8 = np.clip(grey * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey8[:, :, None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels go on black, like an endoscope frame's border.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


def resize_plane(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a float32 (height, width) map, e.g. mask probabilities."""
    if plane.shape[1] == width and plane.shape[0] == height:
        return plane
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """A (height, width) label mask as an 8-bit greyscale PNG (0 background, 255 for class 1)."""
    values = mask.astype(np.uint8)
    if values.max(initial=0) <= 1:
        values = values * 255
    buffer = io.BytesIO()
    Image.fromarray(values, mode="L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
