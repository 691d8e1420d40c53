"""The one way postfx reads pictures a user hands it (colour, depth maps, style
targets) and writes the pictures it makes.

Reading decides by mode and bit depth, never by luck:

| role   | accepted                                                             | becomes                    |
|--------|----------------------------------------------------------------------|----------------------------|
| colour | 8-bit grey / RGB / RGBA / palette (through its palette), 1-bit,      | uint8 (H, W, 3), sRGB      |
|        | YCbCr (JPEG); 16-bit grey, scaled to 8 bits (value / 257)            | values as stored           |
| depth  | 8-bit grey (value / 255), 16-bit grey (value / 65535), 32-bit        | float32 (H, W) normalized  |
|        | integer grey within 0..65535 (as 16-bit), 32-bit float grey (TIFF)   | linear depth in [0, 1]     |
|        | whose values are all finite and in [0, 1]                            |                            |

Anything else (CMYK, float colour, a depth map with colour channels, float
depth outside [0, 1], ...) is refused by name; alpha is dropped. The EXIF
orientation is applied (a phone photo tagged "rotate 90" comes out upright).
The size is checked from the header before anything is decoded, against a
caller's limit (a frame the GPU cannot hold, a decompression bomb: refused in
milliseconds), and FIFOs, devices and folders are refused before they are
opened (reading a FIFO would block).

Writing checks the suffix against the formats that store 8-bit RGB before any
work, refuses a folder or a missing parent folder, and refuses to overwrite
an input unless asked; files are written atomically."""
from __future__ import annotations

import io
import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import InputError

DEFAULT_MAX_SIDE = 16384            # pixels a side: GL_MAX_TEXTURE_SIZE on most drivers
MAX_FILE_BYTES = 2 << 30            # no picture postfx reads is this large
COLOR_MODES = ("1", "L", "P", "PA", "LA", "RGB", "RGBA", "RGBX", "YCbCr")
SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
MODE_NAMES = {"F": "32-bit float", "I": "32-bit integer", "CMYK": "CMYK", "LAB": "Lab", "HSV": "HSV",
              **{m: "16-bit grey" for m in SIXTEEN_BIT_GREY}}
WRITABLE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP", ".ppm": "PPM", ".tga": "TGA"}
ORIENTATION_TAG = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)     # EXIF orientations that swap width and height

_pillow_limit_lock = threading.Lock()


class ImageHeader(NamedTuple):
    path: Path
    width: int              # as shown, after the EXIF orientation
    height: int
    mode: str
    format: str


def regular_file(path, what: str) -> Path:
    """path as a Path, after refusing what is no readable regular file."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (the {what})") from None
    except (OSError, ValueError) as e:          # ValueError: a NUL in the path
        raise InputError(f"{path}: cannot read the {what} ({e})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a folder; pass the {what}'s image file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: is not a regular file (a FIFO or a device?); pass the {what}'s image file")
    if info.st_size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {info.st_size} bytes is beyond the {MAX_FILE_BYTES} byte limit for the {what}")
    return path


@contextmanager
def _open(path: Path, what: str, data: bytes | None = None):
    """Pillow's image of the file (or of `data`, the file's bytes already read), header
    read, nothing decoded. Pillow's own decompression-bomb guard is lifted here: the
    caller checks the size against its real limit."""
    from PIL import Image, UnidentifiedImageError
    with _pillow_limit_lock:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            img = Image.open(path if data is None else io.BytesIO(data))
        except UnidentifiedImageError:
            raise InputError(f"{path}: not an image file Pillow can read (the {what})") from None
        except (OSError, ValueError, SyntaxError) as e:
            raise InputError(f"{path}: cannot read the {what} ({e})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    try:
        yield img
    finally:
        img.close()


def _orientation(img) -> int:
    try:
        return int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:           # a malformed EXIF block is no reason to refuse the picture
        return 1


def _header(img, path: Path) -> ImageHeader:
    width, height = img.size
    if _orientation(img) in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return ImageHeader(path, width, height, img.mode, img.format or "?")


def probe(path, what: str = "image") -> ImageHeader:
    """The picture's size (as shown, after its EXIF orientation) and mode, from its
    header alone."""
    path = regular_file(path, what)
    with _open(path, what) as img:
        return _header(img, path)


def _check_size(header: ImageHeader, what: str, max_side: int, size) -> None:
    if header.width < 1 or header.height < 1:
        raise InputError(f"{header.path}: the {what} is {header.width}x{header.height}: empty")
    if header.width > max_side or header.height > max_side:
        raise InputError(f"{header.path}: the {what} is {header.width}x{header.height} (from its header); the "
                         f"limit is {max_side} pixels a side. Scale it down first")
    if size is not None and (header.width, header.height) != tuple(size):
        raise InputError(f"{header.path}: the {what} is {header.width}x{header.height}, expected "
                         f"{size[0]}x{size[1]}")


def _decoded(img, path: Path, what: str):
    """The fully decoded image with its EXIF orientation applied."""
    from PIL import ImageOps
    try:
        img.load()                  # a truncated or corrupt file fails here
        return ImageOps.exif_transpose(img) if _orientation(img) != 1 else img
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InputError(f"{path}: cannot decode the {what} ({e})") from None


def _mode_name(mode: str) -> str:
    return MODE_NAMES.get(mode, f"mode {mode}")


def read_color(path, *, what: str = "colour image", max_side: int = DEFAULT_MAX_SIDE, size=None,
               data: bytes | None = None) -> np.ndarray:
    """A colour picture as uint8 (H, W, 3), see the module doc. size: (W, H) it must have.
    data: the file's bytes, already read (and checked) by the caller; path names it."""
    path = regular_file(path, what) if data is None else Path(path)
    with _open(path, what, data) as img:
        header = _header(img, path)
        _check_size(header, what, max_side, size)
        if img.mode not in COLOR_MODES and img.mode not in SIXTEEN_BIT_GREY:
            raise InputError(f"{path}: the {what} is a {_mode_name(img.mode)} image; postfx reads 8-bit grey, RGB, "
                             "RGBA or palette images and 16-bit grey. Convert it to 8-bit RGB")
        image = _decoded(img, path, what)
        if image.mode in SIXTEEN_BIT_GREY:
            grey = np.asarray(image).astype(np.uint32)
            grey = ((grey + 128) // 257).astype(np.uint8)              # 0..65535 -> 0..255, rounded
            return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
        return np.asarray(image.convert("RGB"))


def read_depth(path, *, what: str = "depth map", max_side: int = DEFAULT_MAX_SIDE, size=None,
               data: bytes | None = None) -> np.ndarray:
    """A depth map as float32 (H, W) normalized linear depth in [0, 1], see the module doc."""
    path = regular_file(path, what) if data is None else Path(path)
    with _open(path, what, data) as img:
        header = _header(img, path)
        _check_size(header, what, max_side, size)
        if img.mode not in ("L", "I", "F", *SIXTEEN_BIT_GREY):
            raise InputError(f"{path}: the {what} is a {_mode_name(img.mode)} image; a depth map has one channel: "
                             "8- or 16-bit grey (normalized depth x 255 or x 65535) or 32-bit float in [0, 1]")
        image = _decoded(img, path, what)
        values = np.asarray(image)
        if image.mode == "L":
            return values.astype(np.float32) / 255.0
        if image.mode == "F":
            values = values.astype(np.float32)
            if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
                finite = values[np.isfinite(values)]
                seen = f"{finite.min():.4g} .. {finite.max():.4g}" if finite.size else "no finite value"
                raise InputError(f"{path}: a float {what} must hold normalized linear depth, every value finite "
                                 f"and in [0, 1]; this one holds {seen}"
                                 + ("" if np.isfinite(values).all() else " and NaN / Inf")
                                 + ". View distances: pass them as an array with near= and far= (postfx.stylize)")
            return values
        values = values.astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise InputError(f"{path}: the {what} holds 32-bit integers {values.min()} .. {values.max()}; postfx "
                             "reads integer depth as 16-bit (0 .. 65535)")
        return values.astype(np.float32) / 65535.0


# --- writing ---------------------------------------------------------------------

def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def output_format(path, *, inputs=(), overwrite: bool = False, what: str = "output image") -> str:
    """The Pillow format to write `path` in, checked before any work: a suffix for 8-bit
    RGB, no folder, an existing parent folder, not one of `inputs` unless overwrite."""
    path = Path(path)
    fmt_name = WRITABLE.get(path.suffix.lower())
    if fmt_name is None:
        if path.is_dir():
            raise InputError(f"{path}: is a folder; give the {what} a file name, e.g. {path / 'stylized.png'}")
        raise InputError(f"{path}: postfx writes the {what} as {', '.join(sorted(set(WRITABLE)))}; "
                         f"{path.suffix or 'no suffix'} is not one of them")
    if fmt_name == "WEBP":
        from PIL import features
        if not features.check("webp"):
            raise InputError(f"{path}: this Pillow was built without WebP; use .png or .jpg")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the {what} a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{path}: the folder {parent} does not exist; create it first")
    for source in inputs:
        if source is not None and Path(source).exists() and _same_file(path, Path(source)):
            if not overwrite:
                raise InputError(f"{path}: is also an input ({source}); writing it would destroy the input. "
                                 "Choose another output, or pass --overwrite")
    return fmt_name


def encode_rgb(rgb: np.ndarray, fmt_name: str) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format=fmt_name)
    return buffer.getvalue()


def write_rgb(path, rgb: np.ndarray, fmt_name: str) -> None:
    """Write uint8 (H, W, 3) atomically (the old file or the new one, never half)."""
    from .files import atomic_write
    atomic_write(path, encode_rgb(rgb, fmt_name))
