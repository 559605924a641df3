"""Video files from frames (uint8 [H, W, 3] arrays): MP4 (H.264) through imageio's ffmpeg plugin, whose
imageio-ffmpeg wheel bundles an ffmpeg binary, and GIF through Pillow. Either is written atomically (a
temporary file renamed), so a run killed while writing leaves no half video.
"""

from __future__ import annotations

import importlib.util
import io
import os
import warnings
from pathlib import Path

import numpy as np

from reppo_fast.video import VideoError

INSTALL = "pip install 'reppo_fast[video]'"
FORMATS = (".mp4", ".gif")
# GIF frame delays are whole hundredths of a second, and browsers play delays under two of them slowly; the
# frame rates of the videos stay at or below this so that an MP4 and a GIF of an episode play alike.
MAX_FPS = 50.0
# The Python modules each format needs, with the package that provides each.
_NEEDS = {".mp4": (("imageio", "imageio"), ("imageio_ffmpeg", "imageio-ffmpeg")),
          ".gif": (("PIL", "Pillow"),)}


def require(path: Path) -> None:
    """Raise VideoError naming the missing package (and the extra that installs it) when `path`'s format
    cannot be written, or is neither MP4 nor GIF: before minutes of rendering, not after."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise VideoError(f"{path}: videos are written as {' or '.join(FORMATS)}, not {suffix or 'no suffix'}")
    for module, package in _NEEDS[suffix]:
        if importlib.util.find_spec(module) is None:
            raise VideoError(f"writing {suffix} videos needs the {package} package: {INSTALL}")


def gif_bytes(frames: list[np.ndarray], fps: float) -> bytes:
    """An endlessly looping GIF of `frames`. Pillow stores a frame identical to the one before as a longer
    delay of that one, so a still stretch has fewer GIF frames than agent steps."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0)
    return out.getvalue()


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v2 as imageio

    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:
        # H.264 in yuv420p (what every player reads) halves the colour planes; imageio would rescale instead.
        raise VideoError(f"an MP4 needs an even height and width, got {height}x{width}: pick even sizes or "
                         "write a GIF")
    with warnings.catch_warnings():
        # imageio-ffmpeg starts ffmpeg through subprocess, whose fork is followed at once by an exec, so JAX's
        # warning against forking its threads does not apply.
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        # macro_block_size 2: imageio would otherwise rescale every size that is not a multiple of 16.
        imageio.mimwrite(path, frames, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2)


def write(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write `frames` to `path`, an .mp4 or a .gif (its directory is made); returns `path`."""
    path = Path(path)
    require(path)
    if not frames:
        raise VideoError(f"{path}: no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file keeps the suffix: ffmpeg picks the container by it.
    tmp = path.with_name(f".tmp_{os.getpid()}_{path.name}")
    try:
        if path.suffix.lower() == ".gif":
            tmp.write_bytes(gif_bytes(frames, fps))
        else:
            _write_mp4(tmp, frames, fps)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
