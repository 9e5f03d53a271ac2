"""Loading images from paths, URLs, bytes or PIL objects, with errors that name the file and the fix."""
from __future__ import annotations

import base64
import io
import mimetypes
import os
from pathlib import Path
from typing import Union

from PIL import Image, UnidentifiedImageError

from .errors import VLMGuardError

ImageLike = Union[str, os.PathLike, bytes, Image.Image]


def load_image(src: ImageLike, base_dir: str | os.PathLike | None = None) -> Image.Image:
    """Return an RGB PIL image from a PIL image, raw bytes, a ``data:`` URL or a file path.

    Relative paths are resolved against ``base_dir`` (for datasets, the folder of the annotation file).
    Remote ``http(s)`` URLs are not fetched here: pass them through to an ``openai`` backend instead.
    """
    if isinstance(src, Image.Image):
        return src if src.mode == "RGB" else src.convert("RGB")
    if isinstance(src, (bytes, bytearray)):
        return _decode(bytes(src), "<bytes>")
    text = os.fspath(src)
    if text.startswith("data:"):
        try:
            header, payload = text.split(",", 1)
            data = base64.b64decode(payload, validate=True) if ";base64" in header else payload.encode()
        except ValueError as e:
            raise VLMGuardError(f"malformed data URL image ({text[:40]}...): {e}; send 'data:image/png;base64,<base64>'") from e
        return _decode(data, "data URL")
    if text.startswith(("http://", "https://")):
        raise VLMGuardError(f"cannot fetch remote image {text}: download it and pass a local path")
    path = Path(text)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.exists():
        raise VLMGuardError(f"image not found: {path} (check the path; relative paths are resolved against "
                            f"{Path(base_dir) if base_dir is not None else 'the current directory'})")
    if path.is_dir():
        raise VLMGuardError(f"image path is a directory, not a file: {path}")
    return _decode(path.read_bytes(), str(path))


def _decode(data: bytes, name: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")
    except UnidentifiedImageError as e:
        raise VLMGuardError(f"{name} is not an image PIL can read (PNG, JPEG, WebP, GIF, BMP...): "
                            f"check that the file is the image you meant") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise VLMGuardError(f"image {name} is corrupt or truncated ({e}): re-export or re-download it") from e


def fit(image: Image.Image, max_side: int | None) -> Image.Image:
    """Downscale in place (aspect kept) so the longer side is at most ``max_side``; None leaves it as is."""
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    return image


def to_data_url(src: ImageLike, base_dir: str | os.PathLike | None = None) -> str:
    """Encode an image as a base64 ``data:`` URL (what OpenAI-compatible servers accept)."""
    if isinstance(src, (str, os.PathLike)) and not isinstance(src, bytes):
        text = os.fspath(src)
        if text.startswith(("data:", "http://", "https://")):
            return text
        path = Path(text) if base_dir is None or Path(text).is_absolute() else Path(base_dir) / text
        load_image(path)  # validates: a broken file fails here, with its name, not on the server
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    buf = io.BytesIO()
    load_image(src).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
