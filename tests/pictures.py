"""The suite's input pictures, drawn with numpy: objects on transparency, and opaque scenes.

A fresh clone has no ../shared/examples, so the tests draw their own pictures: simple
stand-ins for the TripoSR example images of the same names (a flamingo, a chair, a
horse and a robot on transparency, like those RGBA cut-outs; a house, a teapot and a
marble bust on a background, like the opaque ones that need background removal), of
several shapes and canvas sizes. Each is a list of shapes (ellipses, polygons, thick
strokes) with simple shading, rendered 4 x 4 supersampled so edges are soft (alpha
between 0 and 255), and is the same on every run and platform: elementwise float
arithmetic and sqrt only (correctly rounded everywhere), integer sums for the supersampling.

    python tests/pictures.py OUT_FOLDER     # writes them all as PNG, to look at
"""

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SUPERSAMPLE = 4  # samples per pixel along each axis
BAND_ROWS = 64  # output rows rendered at a time, to bound memory on large canvases


# ---------------------------------------------------------------- shapes, in units: the canvas is 100 wide


@dataclass(frozen=True)
class Shape:
    colour: tuple
    shade: str = "vertical"  # "vertical" (lit from above), "ball" (a lit dome), "flat"
    opacity: float = 1.0

    def box(self) -> tuple:
        raise NotImplementedError

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def colours(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(..., 3) colour in 0..255 at the sample points, shaded across the shape's box."""
        x0, y0, x1, y1 = self.box()
        u = (x - (x0 + x1) / 2) / max((x1 - x0) / 2, 1e-6)
        v = (y - (y0 + y1) / 2) / max((y1 - y0) / 2, 1e-6)
        if self.shade == "ball":  # a dome lit from the upper left, front
            height = np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, 1.0))
            factor = 0.3 + 0.85 * np.clip(-0.35 * u - 0.45 * v + 0.82 * height, 0.0, 1.0)
        elif self.shade == "vertical":
            factor = 1.1 - 0.15 * (v + 1.0)
        else:
            factor = np.ones_like(u)
        return np.clip(factor[..., None] * np.asarray(self.colour, np.float64), 0.0, 255.0)


@dataclass(frozen=True)
class Ellipse(Shape):
    centre: tuple = (50.0, 50.0)
    radii: tuple = (10.0, 10.0)
    shade: str = "ball"

    def box(self):
        (cx, cy), (rx, ry) = self.centre, self.radii
        return cx - rx, cy - ry, cx + rx, cy + ry

    def inside(self, x, y):
        (cx, cy), (rx, ry) = self.centre, self.radii
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


@dataclass(frozen=True)
class Polygon(Shape):
    points: tuple = ()

    def box(self):
        xs, ys = zip(*self.points)
        return min(xs), min(ys), max(xs), max(ys)

    def inside(self, x, y):
        inside = np.zeros(np.broadcast(x, y).shape, bool)
        for (xa, ya), (xb, yb) in zip(self.points, self.points[1:] + self.points[:1]):
            if ya == yb:
                continue  # a horizontal edge crosses no horizontal ray
            crosses = (ya > y) != (yb > y)
            inside ^= crosses & (x < xa + (y - ya) * (xb - xa) / (yb - ya))
        return inside


@dataclass(frozen=True)
class Stroke(Shape):
    """A polyline of the given width with round ends and joints."""

    points: tuple = ()
    width: float = 1.0
    shade: str = "flat"

    def box(self):
        xs, ys = zip(*self.points)
        r = self.width / 2
        return min(xs) - r, min(ys) - r, max(xs) + r, max(ys) + r

    def inside(self, x, y):
        inside = np.zeros(np.broadcast(x, y).shape, bool)
        r2 = (self.width / 2) ** 2
        for (ax, ay), (bx, by) in zip(self.points, self.points[1:]):
            dx, dy = bx - ax, by - ay
            t = np.clip(((x - ax) * dx + (y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
            inside |= (x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2 <= r2
        return inside


@dataclass(frozen=True)
class Backdrop(Shape):
    """The whole canvas, blending from `colour` at the top to `bottom` at the bottom."""

    bottom: tuple = (0, 0, 0)
    height: float = 100.0

    def box(self):
        return -1e9, -1e9, 1e9, 1e9

    def inside(self, x, y):
        return np.ones(np.broadcast(x, y).shape, bool)

    def colours(self, x, y):
        t = np.clip(y / self.height, 0.0, 1.0)[..., None]
        return np.asarray(self.colour, np.float64) * (1.0 - t) + np.asarray(self.bottom, np.float64) * t


# ---------------------------------------------------------------- rendering


def render(shapes, width: int, height: int, matte=(0, 0, 0)) -> np.ndarray:
    """(height, width, 4) uint8, straight alpha; fully transparent pixels get `matte`."""
    unit = width / 100.0  # pixels per unit
    out = np.zeros((height, width, 4), np.uint8)
    for row in range(0, height, BAND_ROWS):
        rows = min(BAND_ROWS, height - row)
        out[row:row + rows] = _render_band(shapes, unit, width, row, rows, matte)
    return out


def _render_band(shapes, unit, width, row, rows, matte):
    ss = SUPERSAMPLE
    premultiplied = np.zeros((rows * ss, width * ss, 3))
    alpha = np.zeros((rows * ss, width * ss))
    top = row * ss
    for shape in shapes:
        x0, y0, x1, y1 = shape.box()
        # the samples whose centres may fall in the shape's box, within this band
        i0, i1 = max(0, int(x0 * unit * ss) - 1), min(width * ss, int(x1 * unit * ss) + 2)
        j0, j1 = max(top, int(y0 * unit * ss) - 1), min(top + rows * ss, int(y1 * unit * ss) + 2)
        if i0 >= i1 or j0 >= j1:
            continue
        x = ((np.arange(i0, i1) + 0.5) / (ss * unit))[None, :]
        y = ((np.arange(j0, j1) + 0.5) / (ss * unit))[:, None]
        x, y = np.broadcast_arrays(x, y)
        cover = shape.inside(x, y) * shape.opacity
        block = (slice(j0 - top, j1 - top), slice(i0, i1))
        # "over", premultiplied
        premultiplied[block] = premultiplied[block] * (1.0 - cover[..., None]) + shape.colours(x, y) * cover[..., None]
        alpha[block] = alpha[block] * (1.0 - cover) + cover
    # integer sums over each pixel's samples: exact, whatever the summation order
    colour_sum = np.rint(premultiplied).astype(np.int64).reshape(rows, ss, width, ss, 3).sum(axis=(1, 3))
    alpha_sum = np.rint(alpha * 255.0).astype(np.int64).reshape(rows, ss, width, ss).sum(axis=(1, 3))
    band = np.empty((rows, width, 4), np.uint8)
    band[..., 3] = (alpha_sum + ss * ss // 2) // (ss * ss)
    seen = np.maximum(alpha_sum, 1)[..., None]
    straight = np.minimum((colour_sum * 255 + seen // 2) // seen, 255)
    band[..., :3] = np.where(alpha_sum[..., None] > 0, straight, np.asarray(matte))
    return band


# ---------------------------------------------------------------- the pictures


def flamingo():
    """512 x 512, tall and thin: a pink bird on one S-shaped neck and two thin legs."""
    pink, dark_pink, leg = (240, 120, 140), (215, 70, 100), (205, 135, 140)
    shapes = [
        Stroke(leg, points=((48, 56), (45, 76), (42, 95)), width=1.4),
        Stroke(leg, points=((55, 56), (59, 75), (57, 95)), width=1.4),
        Polygon(leg, points=((38, 95), (45, 94.5), (44, 96.5), (37, 96.5))),
        Polygon(leg, points=((55, 95), (62, 94.5), (62, 96.5), (55, 96.5))),
        Polygon(dark_pink, points=((64, 44), (80, 50), (78, 54), (64, 54))),  # tail
        Ellipse(pink, centre=(52, 50), radii=(17, 10)),
        Ellipse(dark_pink, centre=(56, 47), radii=(11, 6)),  # wing
        Polygon((40, 30, 35), points=((63, 44), (70, 47), (64, 50))),  # the wing's black tip
        Stroke(pink, points=((38, 47), (33, 39), (37, 30), (42, 22), (39, 14)), width=3.2),  # neck
        Ellipse(pink, centre=(38.5, 11.5), radii=(4.5, 4)),
        Polygon((245, 235, 215), points=((41.5, 10), (48, 12.5), (46.5, 17), (41.5, 14))),  # beak
        Polygon((30, 25, 25), points=((46.8, 15.5), (48, 12.5), (47.5, 17.5))),
        Ellipse((20, 20, 20), centre=(38, 10.5), radii=(0.9, 0.9), shade="flat"),
    ]
    return render(shapes, 512, 512)


def chair():
    """512 x 512, a wooden chair with a cushioned seat and back; white under the transparency."""
    wood, dark_wood, cushion = (120, 70, 40), (85, 48, 28), (232, 222, 205)
    shapes = [
        Stroke(dark_wood, points=((34, 60), (35, 88)), width=2.6),  # back legs
        Stroke(dark_wood, points=((66, 60), (65, 88)), width=2.6),
        Stroke(wood, points=((31, 10), (32, 58)), width=3.2),  # the back's posts and rail
        Stroke(wood, points=((69, 10), (68, 58)), width=3.2),
        Stroke(wood, points=((31, 9), (50, 7), (69, 9)), width=3.4),
        Polygon(cushion, points=((34.5, 12), (65.5, 12), (65, 46), (35, 46))),
        Polygon(cushion, points=((29, 51), (71, 51), (76, 62), (24, 62))),  # seat
        Polygon(wood, points=((24, 62), (76, 62), (76, 66), (24, 66)), shade="flat"),
        Stroke(wood, points=((27, 65), (26.5, 95)), width=3.2),  # front legs
        Stroke(wood, points=((73, 65), (73.5, 95)), width=3.2),
    ]
    return render(shapes, 512, 512, matte=(255, 255, 255))


def horse():
    """640 x 480 (wider than tall): a brown horse standing, seen from the side."""
    coat, dark, hoof = (150, 82, 42), (70, 40, 22), (40, 35, 30)
    shapes = [Stroke(dark, points=((71, 30), (78, 38), (80, 52)), width=2.6)]  # tail
    for top, knee, foot in (((34, 38), (32, 53), (33, 68)), ((40, 40), (41, 54), (40, 68)),
                            ((60, 39), (63, 53), (61, 68)), ((66, 37), (68, 52), (68, 68))):
        shapes += [Stroke(coat, points=(top, knee, foot), width=3.2),
                   Polygon(hoof, points=((foot[0] - 2, 67), (foot[0] + 2, 67), (foot[0] + 2.4, 70), (foot[0] - 2.4, 70)))]
    shapes += [
        Ellipse(coat, centre=(51, 33), radii=(22, 10)),
        Polygon(coat, points=((27, 31), (37, 27), (29, 10), (21, 12))),  # neck
        Polygon(coat, points=((14, 9), (25, 8), (27, 14), (13, 21), (9, 19))),  # head
        Stroke(dark, points=((24, 8), (30, 12), (35, 24)), width=2),  # mane
        Ellipse((20, 15, 10), centre=(19, 11.5), radii=(0.9, 0.9), shade="flat"),
    ]
    return render(shapes, 640, 480)


def robot():
    """384 x 512 (taller than wide), its feet on the canvas' bottom edge; a half-clear visor."""
    shell, metal, glow = (236, 236, 242), (150, 152, 160), (80, 200, 240)
    shapes = [
        Stroke(metal, points=((30, 14), (24, 3)), width=1.2),  # antennas
        Stroke(metal, points=((70, 14), (76, 3)), width=1.2),
        Ellipse((220, 60, 50), centre=(24, 3), radii=(2, 2), opacity=0.6),  # half-clear tips
        Ellipse((220, 60, 50), centre=(76, 3), radii=(2, 2), opacity=0.6),
        Stroke(metal, points=((35, 60), (21, 76), (19, 92)), width=6),  # arms
        Stroke(metal, points=((65, 60), (79, 76), (81, 92)), width=6),
        Stroke(metal, points=((42, 88), (42, 128)), width=9),  # legs
        Stroke(metal, points=((58, 88), (58, 128)), width=9),
        Polygon(shell, points=((32, 126), (48, 126), (49, 140), (31, 140))),  # feet, cut by the canvas
        Polygon(shell, points=((52, 126), (68, 126), (69, 140), (51, 140))),
        Polygon(shell, points=((35, 52), (65, 52), (69, 92), (31, 92))),  # body
        Ellipse(shell, centre=(50, 32), radii=(29, 23)),  # head
        Ellipse((25, 35, 55), centre=(50, 35), radii=(20, 12), opacity=0.8),  # visor
        Ellipse(glow, centre=(41, 35), radii=(5, 5)),
        Ellipse(glow, centre=(59, 35), radii=(5, 5)),
    ]
    return render(shapes, 384, 512)


def house():
    """768 x 768 RGB, opaque: a small house and a tree on a patch of sand, under a sky."""
    wall, side, roof = (225, 205, 170), (180, 160, 130), (170, 70, 50)
    shapes = [
        Backdrop((140, 185, 230), bottom=(225, 235, 240)),
        Ellipse((215, 195, 145), centre=(50, 72), radii=(42, 18), shade="vertical"),  # sand
        Polygon(wall, points=((22, 48), (50, 58), (50, 82), (22, 72))),  # front
        Polygon(side, points=((50, 58), (76, 46), (76, 70), (50, 82))),  # side
        Polygon(roof, points=((18, 47), (46, 30), (52, 58), (22, 49))),
        Polygon((140, 55, 40), points=((46, 30), (74, 20), (80, 45), (52, 58))),
        Polygon((95, 65, 45), points=((31, 60), (37, 62), (37, 75), (31, 73)), shade="flat"),  # door
        Polygon((90, 130, 170), points=((41, 62), (46, 64), (46, 69), (41, 67)), shade="flat"),  # window
        Stroke((110, 80, 50), points=((84, 70), (85, 50), (83, 36)), width=2.2),  # tree
        Ellipse((60, 140, 60), centre=(83, 33), radii=(9, 6)),
    ]
    return render(shapes, 768, 768)[..., :3]


def teapot():
    """640 x 640 RGBA whose alpha is 255 everywhere (opaque all the same): a red teapot on grey."""
    red = (200, 60, 40)
    shapes = [
        Backdrop((128, 128, 128), bottom=(110, 110, 110)),
        Ellipse((85, 85, 85), centre=(50, 80), radii=(34, 6), shade="flat", opacity=0.6),  # shadow
        Stroke(red, points=((70, 42), (82, 40), (84, 52), (74, 64)), width=4.5),  # handle
        Polygon(red, points=((26, 58), (12, 36), (16, 34), (32, 48))),  # spout
        Ellipse(red, centre=(50, 58), radii=(27, 22)),  # body
        Ellipse(red, centre=(50, 37), radii=(14, 4)),  # lid
        Ellipse(red, centre=(50, 32), radii=(3, 3)),
    ]
    return render(shapes, 640, 640)


def marble():
    """700 x 700 RGB, opaque: a pale marble bust on a dark gradient."""
    stone = (235, 232, 225)
    shapes = [
        Backdrop((70, 70, 75), bottom=(120, 118, 115)),
        Polygon(stone, points=((30, 92), (34, 70), (66, 70), (70, 92))),  # plinth and shoulders
        Ellipse(stone, centre=(50, 70), radii=(24, 10)),
        Stroke(stone, points=((50, 60), (50, 52)), width=9, shade="vertical"),  # neck
        Ellipse(stone, centre=(50, 36), radii=(15, 18)),  # head
        Ellipse(stone, centre=(50, 22), radii=(17, 9)),  # curls
    ]
    return render(shapes, 700, 700)[..., :3]


TRANSPARENT = {"flamingo": flamingo, "chair": chair, "horse": horse, "robot": robot}
OPAQUE = {"house": house, "teapot": teapot, "marble": marble}
PICTURES = {**TRANSPARENT, **OPAQUE}


def picture(name: str) -> np.ndarray:
    """The named picture's pixels: (H, W, 4) uint8, or (H, W, 3) for the RGB ones."""
    return PICTURES[name]()


def shaded_box_cutout() -> np.ndarray:
    """A cut-out (RGBA, 300 x 220): a box with colour gradients and a half-transparent rim
    on transparency (the views' carving test and its reference numbers)."""
    h, w = 300, 220
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rgba = np.zeros((h, w, 4), np.uint8)
    inside = (np.abs(xx - 110) < 70) & (np.abs(yy - 160) < 110)
    rgba[..., 0] = (60 + xx * 0.8).astype(np.uint8)
    rgba[..., 1] = (200 - yy * 0.5).clip(0, 255).astype(np.uint8)
    rgba[..., 2] = ((xx + yy) % 97 + 80).astype(np.uint8)
    rgba[..., 3] = np.where(inside, 255, 0)
    rgba[inside & (np.abs(xx - 110) > 66), 3] = 128
    return rgba


def write_pictures(folder, names=tuple(PICTURES)) -> Path:
    """Writes <folder>/<name>.png for each name; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(picture(name)).save(folder / f"{name}.png")
    return folder


def digest(pixels: np.ndarray) -> str:
    """A picture's fingerprint: reference numbers record it, so that a test can tell a
    changed picture from a changed preparation."""
    return hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def unframe(prepared: np.ndarray, ratio: float = 0.85) -> np.ndarray:
    """An RGBA picture that prepares (crop, frame at `ratio`, grey composite) to `prepared`.

    The prepared image's centre square, opaque, on transparency: framing crops it out and
    pads it back by the same margins, and the composite keeps opaque pixels as they are.
    The one faint pixel just past the square's lower right corner is there because the
    framing's crop stops one short of the last visible row and column.
    """
    size = prepared.shape[0]
    side = next(s for s in range(1, size + 1) if int(s / ratio) == size)
    margin = (size - side) // 2
    rgba = np.zeros((size + 1, size + 1, 4), np.uint8)
    rgba[margin:margin + side, margin:margin + side, :3] = prepared[margin:margin + side, margin:margin + side]
    rgba[margin:margin + side, margin:margin + side, 3] = 255
    rgba[margin + side, margin + side, 3] = 1
    return rgba


if __name__ == "__main__":
    print(write_pictures(sys.argv[1] if len(sys.argv) > 1 else "pictures"))
