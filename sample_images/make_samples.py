"""Draw the sample property photos used by the sandbox's demo order.

Run `python sample_images/make_samples.py` to (re)write the JPEGs next to this script. The
drawings are deterministic (fixed seeds, no clock) so re-running produces identical files.

The pictures are deliberately a little dark and flat, like an unedited phone shot, so that the
sandbox's "enhancement" (auto-contrast, colour, sharpness) makes a visible difference.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

WIDTH, HEIGHT = 1600, 1067
JPEG_QUALITY = 85
HERE = Path(__file__).resolve().parent

Colour = tuple[int, int, int]


def vertical_gradient(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], top: Colour, bottom: Colour
) -> None:
    """Fill `box` with a top-to-bottom linear gradient."""
    x0, y0, x1, y1 = box
    span = max(1, y1 - y0)
    for y in range(y0, y1):
        t = (y - y0) / span
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(x0, y), (x1, y)], fill=colour)


def speckle(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    box: tuple[int, int, int, int],
    base: Colour,
    spread: int,
    count: int,
    length: int,
) -> None:
    """Scatter short strokes (grass blades, leaves, carpet fibres) in `box`."""
    x0, y0, x1, y1 = box
    for _ in range(count):
        x, y = rng.randint(x0, x1), rng.randint(y0, y1)
        shade = tuple(max(0, min(255, c + rng.randint(-spread, spread))) for c in base)
        draw.line([(x, y), (x + rng.randint(-2, 2), y - rng.randint(1, length))], fill=shade)


def tree(draw: ImageDraw.ImageDraw, rng: random.Random, x: int, ground: int, size: int) -> None:
    """A trunk and a clump of overlapping leaf ellipses."""
    draw.rectangle([x - size // 12, ground - size, x + size // 12, ground], fill=(78, 56, 38))
    for _ in range(14):
        cx = x + rng.randint(-size // 2, size // 2)
        cy = ground - size - rng.randint(-size // 4, size // 2)
        r = rng.randint(size // 5, size // 3)
        green = (40 + rng.randint(0, 30), 90 + rng.randint(0, 40), 35 + rng.randint(0, 20))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=green)


def house_front(rng: random.Random) -> Image.Image:
    """Detached house: sky, pitched roof, windows, front door, lawn and path."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    vertical_gradient(draw, (0, 0, WIDTH, 620), (120, 165, 215), (200, 220, 235))
    for cx, cy in ((260, 140), (1250, 110), (980, 190)):
        for dx in range(-80, 81, 40):
            draw.ellipse([cx + dx - 60, cy - 35, cx + dx + 60, cy + 35], fill=(236, 240, 244))
    vertical_gradient(draw, (0, 620, WIDTH, HEIGHT), (92, 150, 70), (60, 115, 45))
    speckle(draw, rng, (0, 640, WIDTH, HEIGHT), (75, 135, 55), 25, 9000, 9)
    tree(draw, rng, 170, 700, 260)
    tree(draw, rng, 1450, 690, 230)
    draw.rectangle([400, 330, 1200, 720], fill=(196, 170, 140))
    for y in range(340, 720, 22):
        draw.line([(400, y), (1200, y)], fill=(178, 152, 124), width=2)
    draw.polygon([(360, 340), (800, 120), (1240, 340)], fill=(92, 62, 58))
    draw.rectangle([960, 150, 1020, 260], fill=(120, 80, 70))
    for x0 in (460, 640, 980):
        for y0 in (380, 540):
            if x0 == 640 and y0 == 540:
                continue
            draw.rectangle([x0, y0, x0 + 130, y0 + 110], fill=(245, 245, 240))
            draw.rectangle([x0 + 8, y0 + 8, x0 + 122, y0 + 102], fill=(95, 120, 150))
            draw.line([(x0 + 65, y0 + 8), (x0 + 65, y0 + 102)], fill=(245, 245, 240), width=5)
            draw.line([(x0 + 8, y0 + 55), (x0 + 122, y0 + 55)], fill=(245, 245, 240), width=5)
    draw.rectangle([750, 540, 850, 720], fill=(40, 70, 95))
    draw.ellipse([830, 625, 842, 637], fill=(210, 180, 90))
    draw.polygon([(750, 720), (850, 720), (980, HEIGHT), (620, HEIGHT)], fill=(170, 160, 150))
    return image


def garden(rng: random.Random) -> Image.Image:
    """Back garden: lawn, trees, a picket fence and a stepping-stone path."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    vertical_gradient(draw, (0, 0, WIDTH, 480), (140, 180, 220), (215, 228, 238))
    vertical_gradient(draw, (0, 480, WIDTH, HEIGHT), (100, 160, 75), (55, 110, 40))
    speckle(draw, rng, (0, 500, WIDTH, HEIGHT), (80, 140, 58), 30, 14000, 12)
    for x in (120, 420, 1180, 1480):
        tree(draw, rng, x, 500, 200 + rng.randint(0, 80))
    draw.rectangle([0, 430, WIDTH, 445], fill=(225, 222, 210))
    draw.rectangle([0, 485, WIDTH, 500], fill=(225, 222, 210))
    for x in range(0, WIDTH, 46):
        draw.polygon(
            [(x, 520), (x, 400), (x + 15, 385), (x + 30, 400), (x + 30, 520)], fill=(238, 235, 225)
        )
    for i in range(9):
        t = i / 8
        cx = round(800 + (rng.random() - 0.5) * 60 * (1 - t))
        cy = round(560 + t * 470)
        rx, ry = round(40 + 90 * t), round(14 + 30 * t)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(165, 158, 148))
    for x, colour in ((260, (200, 80, 90)), (1320, (230, 190, 70)), (980, (170, 110, 190))):
        for _ in range(40):
            fx, fy = x + rng.randint(-90, 90), 640 + rng.randint(-40, 40)
            draw.ellipse([fx - 7, fy - 7, fx + 7, fy + 7], fill=colour)
    return image


def living_room(rng: random.Random) -> Image.Image:
    """Interior: walls, window with a garden view, plank floor, sofa, rug and lamp."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    vertical_gradient(draw, (0, 0, WIDTH, 700), (214, 206, 190), (190, 180, 165))
    vertical_gradient(draw, (0, 700, WIDTH, HEIGHT), (150, 110, 75), (120, 85, 55))
    for x in range(-400, WIDTH + 400, 120):
        draw.line([(x, HEIGHT), (800 + (x - 800) // 3, 700)], fill=(105, 75, 48), width=3)
    draw.rectangle([980, 150, 1420, 560], fill=(245, 243, 238))
    vertical_gradient(draw, (1000, 170, 1400, 420), (150, 190, 225), (205, 225, 235))
    vertical_gradient(draw, (1000, 420, 1400, 540), (100, 150, 80), (70, 120, 55))
    draw.line([(1200, 170), (1200, 540)], fill=(245, 243, 238), width=10)
    draw.line([(1000, 355), (1400, 355)], fill=(245, 243, 238), width=10)
    draw.rectangle([200, 190, 520, 400], fill=(70, 90, 110))
    draw.rectangle([215, 205, 505, 385], fill=(175, 130, 90))
    draw.ellipse([300, 760, 1150, 1000], fill=(160, 60, 60))
    speckle(draw, rng, (360, 790, 1090, 970), (165, 65, 62), 18, 5000, 4)
    draw.rounded_rectangle([160, 520, 900, 700], radius=30, fill=(70, 95, 120))
    draw.rounded_rectangle([160, 600, 900, 800], radius=25, fill=(60, 85, 110))
    draw.rounded_rectangle([120, 540, 220, 800], radius=30, fill=(55, 80, 105))
    draw.rounded_rectangle([840, 540, 940, 800], radius=30, fill=(55, 80, 105))
    for x0 in (260, 560):
        draw.rounded_rectangle([x0, 540, x0 + 200, 640], radius=20, fill=(220, 190, 120))
    draw.line([(1500, 820), (1500, 470)], fill=(50, 45, 40), width=8)
    draw.polygon([(1430, 470), (1570, 470), (1540, 380), (1460, 380)], fill=(240, 225, 190))
    draw.rectangle([1060, 760, 1260, 790], fill=(90, 60, 40))
    return image


SCENES: dict[str, Callable[[random.Random], Image.Image]] = {
    "house-front.jpg": house_front,
    "garden.jpg": garden,
    "living-room.jpg": living_room,
}


def underexpose(image: Image.Image) -> Image.Image:
    """Make a drawing look like an unedited shot: soft, flat and a stop too dark."""
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    image = ImageEnhance.Contrast(image).enhance(0.72)
    image = ImageEnhance.Color(image).enhance(0.8)
    return ImageEnhance.Brightness(image).enhance(0.78)


def main() -> None:
    for index, (name, painter) in enumerate(sorted(SCENES.items())):
        image = underexpose(painter(random.Random(1000 + index)))
        path = HERE / name
        image.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)
        print(f"{path.name}: {image.width}x{image.height}, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
