"""Headless Chromium for the render tests: find it, take a full-page screenshot, measure what it shows."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)
NO_BROWSER = (
    "no headless browser here (looked for chromium, chromium-browser, google-chrome); install Debian's "
    "chromium (apt-get install chromium, as .ci/run does when it can) to run the render tests"
)


def find_browser() -> str | None:
    return next((path for name in _NAMES if (path := shutil.which(name))), None)


def screenshot(browser: str, html: Path, png: Path, *, width: int = 1280, height: int = 12000) -> np.ndarray:
    """Render ``html`` in a ``width`` x ``height`` window and return the page as an RGB array, cropped below the
    last row that is not white."""
    from PIL import Image  # pillow comes with matplotlib

    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--screenshot={png}", html.resolve().as_uri()],
            capture_output=True, timeout=180, check=False,
        )
    assert png.exists(), f"{browser} wrote no screenshot"
    with Image.open(png) as image:
        rgb = np.asarray(image.convert("RGB"))
    ink = np.where(rgb.min(axis=(1, 2)) < 250)[0]
    return rgb[: ink.max() + 1] if ink.size else rgb[:0]


def colour_count(rgb: np.ndarray) -> int:
    """Number of distinct colours in an RGB array."""
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    return int(np.unique(packed).size)
