"""Images from whatever a source stores into encoded bytes (``ImageRef``), never temp paths.

Accepted cells: Hugging Face ``Image`` storage (``{"bytes": ..., "path": ...}``), raw bytes, a
base64 string, a path (relative to the source folder), or a PIL image. PNG and JPEG bytes are kept
as they are; other formats (WebP, GIF, BMP, ...) are re-encoded as PNG so every consumer can read them.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

from ovr.schema import ImageRef

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


def _to_png(data: bytes) -> bytes:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            out = io.BytesIO()
            (img if img.mode in ("RGB", "RGBA", "L") else img.convert("RGB")).save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"undecodable image ({len(data)} bytes): {err}") from err


def encoded_bytes(value: Any, base_dir: Path | None = None) -> bytes:
    """The encoded image bytes of one cell (see module doc); ``ValueError`` when there are none."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return encoded_bytes(value["bytes"], base_dir)
        if value.get("path"):
            return encoded_bytes(Path(value["path"]), base_dir)
        raise ValueError("image cell has neither bytes nor path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise ValueError("empty image bytes")
        return data if data.startswith((_PNG, _JPEG)) else _to_png(data)
    if isinstance(value, (str, Path)):
        text = str(value)
        path = Path(text)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if len(text) < 1024 and path.is_file():
            return encoded_bytes(path.read_bytes())
        try:
            return encoded_bytes(base64.b64decode(text.split(",", 1)[-1], validate=True))
        except (binascii.Error, ValueError):
            raise ValueError(f"image file not found: {path}") from None
    if hasattr(value, "save"):  # a PIL image
        out = io.BytesIO()
        value.save(out, format="PNG")
        return out.getvalue()
    raise ValueError(f"cannot read an image from a {type(value).__name__}")


def to_image_ref(value: Any, base_dir: Path | None = None) -> ImageRef:
    """One image cell as an inline :class:`ImageRef` with its sha256."""
    data = encoded_bytes(value, base_dir)
    return ImageRef.from_bytes(data)
