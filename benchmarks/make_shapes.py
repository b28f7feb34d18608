"""Write a small RGB image-folder data set of drawn shapes (circle, square, triangle, cross) for ``--data imagefolder``.

A second data set built from local files only, unlike the embedded MNIST: colour, clutter, varying size and
position. ``python benchmarks/make_shapes.py OUT [--train 2000 --test 500 --size 32 --seed 0]`` writes
``OUT/train/<class>/*.png`` and ``OUT/test/<class>/*.png``.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "cross")


def draw_shape(kind: str, size: int, rng: random.Random) -> Image.Image:
    """One image: a noisy background, two distractor lines, and one shape of ``kind`` in a random colour."""
    background = tuple(rng.randrange(0, 120) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for _ in range(2):
        points = [(rng.uniform(0, size), rng.uniform(0, size)) for _ in range(2)]
        draw.line(points, fill=tuple(rng.randrange(0, 160) for _ in range(3)), width=1)
    colour = tuple(rng.randrange(120, 256) for _ in range(3))
    r = rng.uniform(0.2, 0.4) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "square":
        corners = [
            (cx + r * math.cos(angle + k * math.pi / 2), cy + r * math.sin(angle + k * math.pi / 2)) for k in range(4)
        ]
        draw.polygon(corners, fill=colour)
    elif kind == "triangle":
        corners = [
            (cx + r * math.cos(angle + k * 2 * math.pi / 3), cy + r * math.sin(angle + k * 2 * math.pi / 3))
            for k in range(3)
        ]
        draw.polygon(corners, fill=colour)
    else:
        for k in range(2):
            a = angle + k * math.pi / 2
            dx, dy = r * math.cos(a), r * math.sin(a)
            draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=colour, width=max(2, int(r / 3)))
    return image


def write_split(root: Path, count: int, size: int, rng: random.Random) -> None:
    for i in range(count):
        kind = CLASSES[i % len(CLASSES)]
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        draw_shape(kind, size, rng).save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new directory")
    rng = random.Random(args.seed)
    write_split(args.out / "train", args.train, args.size, rng)
    write_split(args.out / "test", args.test, args.size, rng)
    print(f"wrote {args.train} training and {args.test} test images of {len(CLASSES)} classes to {args.out}")


if __name__ == "__main__":
    main()
