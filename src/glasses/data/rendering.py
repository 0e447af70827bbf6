"""Drawing a planned shot: PIL on a supersampled canvas through one affine pose, so the glasses
mask shares the exact geometry of the glasses in the image."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from glasses.data.faces import Color, Eyewear, Person, Points, Rgba, Shot, mix, shade


@dataclass(frozen=True)
class Layout:
    """Where the facial features sit, in face coordinates, for one shot."""

    a: float  # face half-width
    b: float  # face half-height
    dx: float  # sideways slide of the features that fakes a head turn
    eye_y: float
    eye_sep: float
    eye_rx: float
    eye_ry: float
    brow_y: float
    nose_y: float
    mouth_y: float


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 40, power: float = 2.0) -> Points:
    """Superellipse outline; power 2 is an ellipse, larger powers approach a rounded rectangle."""
    return unit_superellipse(n, power) * (rx, ry) + (cx, cy)


@functools.cache
def unit_superellipse(n: int, power: float) -> Points:
    """Cached because a few hundred thousand outlines are drawn from a handful of shapes."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / power
    outline = np.column_stack([np.sign(c) * np.abs(c) ** e, np.sign(s) * np.abs(s) ** e])
    outline.flags.writeable = False  # shared by every caller
    return outline


def rotated(points: Points, center: tuple[float, float], degrees: float) -> Points:
    angle = np.deg2rad(degrees)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - center) @ rot.T + center


class Canvas:
    """Draws shapes given in face coordinates through the shot's pose onto a supersampled image.

    Face coordinates put the face centre at the origin with y pointing down, in fractions of the
    image width, so every part is posed (shifted, scaled, rotated) by the same transform.
    """

    def __init__(self, image: Image.Image, shot: Shot, min_line_px: int = 1) -> None:
        self.draw = ImageDraw.Draw(image, "RGBA" if image.mode == "RGB" else None)
        self.min_line_px = min_line_px
        self.unit = image.width * shot.scale
        angle = np.deg2rad(shot.angle)
        self.matrix = self.unit * np.array(
            [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        )
        self.offset = np.asarray(shot.center) * image.width

    def _pixels(self, points: Points) -> list[float]:
        return (points @ self.matrix.T + self.offset).ravel().tolist()

    def fill(self, points: Points, color: Color | Rgba | int) -> None:
        self.draw.polygon(self._pixels(points), fill=color)

    def stroke(self, points: Points, width: float, color: Color | Rgba | int, closed=False) -> None:
        if closed:
            points = np.vstack([points, points[:2]])
        pixels = max(self.min_line_px, round(width * self.unit))
        self.draw.line(self._pixels(points), fill=color, width=pixels, joint="curve")


def render(
    shot: Shot, size: int, rng: np.random.Generator
) -> tuple[Image.Image, Image.Image | None]:
    """Draw one shot; return the RGB image and, with glasses, its binary glasses mask."""
    factor = max(2, -(-256 // size))  # supersample to at least 256 px for smooth edges
    canvas_px = size * factor
    image = draw_background(shot, canvas_px)
    canvas = Canvas(image, shot)
    layout = layout_face(shot)
    draw_body(canvas, shot, layout)
    draw_hair_volume(canvas, shot.person, layout)
    draw_ears(canvas, shot.person, layout)
    draw_face(canvas, shot.person, layout)
    draw_forehead_hair(canvas, shot.person, layout)
    if shot.headband is not None:
        draw_headband(canvas, shot, layout)
    draw_brows(canvas, shot.person, layout)
    draw_under_eye_shadows(canvas, shot, layout)
    draw_eyes(canvas, shot, layout)
    draw_nose(canvas, shot.person, layout)
    draw_mouth(canvas, shot, layout)
    mask = None
    if shot.eyewear is not None:
        parts = glasses_geometry(shot.eyewear, layout)
        draw_glasses(canvas, shot.eyewear, parts)
        mask_canvas = Image.new("L", image.size, 0)
        # Lines at least one output pixel wide, so a hairline frame that still tints the image
        # keeps at least half of some pixel and survives the threshold below.
        draw_glasses_mask(Canvas(mask_canvas, shot, min_line_px=factor), parts)
        mask_small = np.asarray(mask_canvas.reduce(factor))
        mask = Image.fromarray(np.where(mask_small >= 128, 255, 0).astype(np.uint8), mode="L")
    small = image.reduce(factor)  # box filter: the anti-aliasing step
    return Image.fromarray(apply_light_and_noise(np.asarray(small), shot, rng)), mask


def draw_background(shot: Shot, px: int) -> Image.Image:
    """Linear two-colour gradient in a random direction, as behind a studio or office portrait."""
    first, second, direction = shot.background
    ramp = np.linspace(-0.5, 0.5, px, dtype=np.float32)
    t = math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None] + 0.5
    np.clip(t, 0, 1, out=t)
    # Channel by channel: far faster than broadcasting over a trailing colour axis.
    pairs = zip(first, second, strict=True)
    channels = [Image.fromarray((a + t * (b - a)).astype(np.uint8)) for a, b in pairs]
    return Image.merge("RGB", channels)


def layout_face(shot: Shot) -> Layout:
    """Place the features on the face; the head turn slides them sideways (a cheap yaw)."""
    person = shot.person
    a = person.half_width
    b = a * person.aspect
    eye_ry = a * 0.085 * shot.eye_open
    eye_y = -0.08 * b
    return Layout(
        a=a,
        b=b,
        dx=shot.turn * 0.1 * a,
        eye_y=eye_y,
        eye_sep=person.eye_spacing * a,
        eye_rx=0.18 * a,
        eye_ry=eye_ry,
        brow_y=eye_y - 0.26 * a,
        nose_y=0.3 * b,
        mouth_y=0.56 * b,
    )


def face_outline(person: Person, layout: Layout, grow: float = 1.0) -> Points:
    """Superellipse narrowing towards the chin, so faces range from round to long and square."""
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / person.squareness
    x = layout.a * grow * np.sign(c) * np.abs(c) ** e * (1 - person.chin_taper * np.clip(s, 0, 1))
    y = layout.b * grow * np.sign(s) * np.abs(s) ** e
    return np.column_stack([x, y])


def draw_body(canvas: Canvas, shot: Shot, layout: Layout) -> None:
    """Long hair behind the shoulders, clothes and neck: what frames a head in a portrait."""
    a, b = layout.a, layout.b
    person = shot.person
    if person.hair_style == "long":
        back = ellipse(0, 0.35 * b, 1.3 * a, 1.35 * b, power=3.0)
        canvas.fill(back, shade(person.hair_color, 0.85))
    canvas.fill(ellipse(0, b + 0.24, 2.3 * a, 0.26), shot.clothes)
    neck = np.array(
        [[-0.45 * a, 0.4 * b], [0.45 * a, 0.4 * b], [0.5 * a, b + 0.1], [-0.5 * a, b + 0.1]]
    )
    canvas.fill(neck, shade(person.skin, 0.82))


def draw_hair_volume(canvas: Canvas, person: Person, layout: Layout) -> None:
    """Hair behind the face: visible above the forehead and along the temples."""
    if person.hair_style == "bald":
        return
    a, b = layout.a, layout.b
    drop = 0.05 if person.hair_style == "long" else 0.22
    canvas.fill(ellipse(0, -drop * b, 1.12 * a, 1.08 * b - drop * b * 0.3), person.hair_color)


def draw_ears(canvas: Canvas, person: Person, layout: Layout) -> None:
    for side in (-1, 1):
        x = side * layout.a + layout.dx * 0.5
        canvas.fill(ellipse(x, layout.eye_y + 0.12 * layout.b, 0.15 * layout.a, 0.22 * layout.b),
                    shade(person.skin, 0.9))  # fmt: skip


def draw_face(canvas: Canvas, person: Person, layout: Layout) -> None:
    canvas.fill(face_outline(person, layout), person.skin)


def draw_forehead_hair(canvas: Canvas, person: Person, layout: Layout) -> None:
    """Hair over the forehead down to a hairline; a fringe reaches the brows like a thick frame."""
    style = person.hair_style
    if style == "bald":
        return
    a, b = layout.a, layout.b
    top = face_outline(person, layout, grow=1.07)
    top = top[top[:, 1] <= 0]
    top = top[np.argsort(np.arctan2(top[:, 1], top[:, 0]))]  # left side, over the top, right side
    xs = np.linspace(1.07 * a, -1.07 * a, 31)
    hairline = {
        "short": -0.6 * b,
        "long": -0.55 * b,
        "side_part": -0.5 * b,
        "fringe": layout.brow_y - 0.07 * a,
    }[style]
    ys = hairline + (layout.eye_y - hairline) * np.abs(xs / (1.07 * a)) ** 6
    if style == "side_part":
        ys = ys + 0.12 * xs
    if style == "fringe":
        ys[1::2] -= 0.06 * a  # separate strands
    canvas.fill(np.vstack([top, np.column_stack([xs, ys])]), person.hair_color)


def draw_headband(canvas: Canvas, shot: Shot, layout: Layout) -> None:
    """A horizontal band across the forehead: a frame-like bar without any glasses."""
    a = layout.a
    xs = np.linspace(-1.08 * a, 1.08 * a, 21)
    middle = layout.brow_y - shot.headband_height * a - 0.06 * a * (1 - (xs / (1.08 * a)) ** 2)
    half = 0.09 * a
    band = np.vstack(
        [np.column_stack([xs, middle - half]), np.column_stack([xs, middle + half])[::-1]]
    )
    canvas.fill(band, shot.headband)


def draw_brows(canvas: Canvas, person: Person, layout: Layout) -> None:
    """Arched bands; bushy dark ones look like the top bar of a frame at low resolution."""
    a = layout.a
    length = 0.22 * a
    u = np.linspace(-1, 1, 15)
    for side in (-1, 1):
        cx = side * layout.eye_sep + layout.dx
        xs = cx + side * u * length
        centre = layout.brow_y - 0.05 * a * (1 - u**2)
        # Thick at the inner end, tapering outward, like real brows.
        half = person.brow_thickness * a * (0.6 - 0.25 * u)
        outline = np.vstack([np.column_stack([xs, centre - half]),
                             np.column_stack([xs, centre + half])[::-1]])  # fmt: skip
        canvas.fill(outline, person.brow_color)


def draw_under_eye_shadows(canvas: Canvas, shot: Shot, layout: Layout) -> None:
    """Dark rings below the eyes: a no-glasses look-alike of a lower lens rim."""
    if not shot.shadow_alpha:
        return
    for side in (-1, 1):
        cx = side * layout.eye_sep + layout.dx
        cy = layout.eye_y + 0.12 * layout.a
        for grow in (1.3, 1.0):  # two nested translucent layers fake a soft edge
            alpha = shot.shadow_alpha // 2
            canvas.fill(ellipse(cx, cy, layout.eye_rx * 1.2 * grow, 0.09 * layout.a * grow),
                        (70, 38, 48, alpha))  # fmt: skip


def draw_eyes(canvas: Canvas, shot: Shot, layout: Layout) -> None:
    """Sclera, iris, pupil, catch-light and upper lid; eyeliner thickens the lid into a rim."""
    person = shot.person
    lid = (40, 28, 26)
    for side in (-1, 1):
        cx = side * layout.eye_sep + layout.dx
        cy = layout.eye_y
        rx, ry = layout.eye_rx, layout.eye_ry
        white = ellipse(cx, cy, rx, ry, n=32)
        canvas.fill(white, (238, 236, 230))
        iris_r = min(0.5 * rx, ry * 1.05)
        ix = cx + shot.gaze * rx * 0.4
        canvas.fill(ellipse(ix, cy, iris_r, iris_r, n=24), person.eye_color)
        canvas.fill(ellipse(ix, cy, iris_r * 0.45, iris_r * 0.45, n=16), (12, 10, 10))
        canvas.fill(ellipse(ix - 0.3 * iris_r, cy - 0.3 * iris_r, iris_r * 0.2, iris_r * 0.2, n=8),
                    (250, 250, 250))  # fmt: skip
        upper = white[(white[:, 1] <= cy + 1e-9)]
        upper = upper[np.argsort(upper[:, 0])]
        width = 0.07 * layout.a if shot.eyeliner else 0.025 * layout.a
        canvas.stroke(upper, width, (15, 12, 12) if shot.eyeliner else lid)


def draw_nose(canvas: Canvas, person: Person, layout: Layout) -> None:
    a, dx = layout.a, layout.dx * 1.3
    shadow = shade(person.skin, 0.8)
    bridge = np.array(
        [[dx - 0.08 * a, layout.eye_y + 0.1 * a], [dx - 0.1 * a, layout.nose_y - 0.1 * a]]
    )
    canvas.stroke(bridge, 0.03 * a, shadow)
    canvas.fill(ellipse(dx, layout.nose_y, 0.17 * a, 0.08 * a), shade(person.skin, 0.9))
    for side in (-1, 1):
        canvas.fill(ellipse(dx + side * 0.08 * a, layout.nose_y + 0.02 * a, 0.045 * a, 0.03 * a),
                    shade(person.skin, 0.5))  # fmt: skip


def draw_mouth(canvas: Canvas, shot: Shot, layout: Layout) -> None:
    a = layout.a
    half = 0.36 * a
    u = np.linspace(-1, 1, 21)
    xs = layout.dx * 1.2 + u * half
    bend = shot.smile * 0.1 * a * u**2  # corners up when smiling
    upper = layout.mouth_y - 0.06 * a * (1 - u**2) - bend
    lower = layout.mouth_y + 0.09 * a * (1 - u**2) - bend
    lips = mix(shot.person.skin, (165, 60, 72), 0.45)
    canvas.fill(np.vstack([np.column_stack([xs, upper]), np.column_stack([xs, lower])[::-1]]), lips)
    canvas.stroke(np.column_stack([xs, layout.mouth_y - bend]), 0.02 * a, shade(lips, 0.6))


@dataclass(frozen=True)
class GlassesParts:
    """Glasses geometry shared by the image and the mask, so the mask matches the pixels."""

    lenses: list[Points]
    bridge: Points
    temples: list[Points]
    browline: list[Points]
    thickness: float


def glasses_geometry(eyewear: Eyewear, layout: Layout) -> GlassesParts:
    a, dx = layout.a, layout.dx
    rx = eyewear.lens_rx * a
    ry = rx * eyewear.aspect
    power = {"round": 2.0, "oval": 2.2, "rectangular": 4.5, "browline": 3.5}[eyewear.shape]
    cy = layout.eye_y + 0.03 * a
    lenses, temples, browline = [], [], []
    for side in (-1, 1):
        cx = side * layout.eye_sep + dx
        lens = ellipse(cx, cy, rx, ry, n=48, power=power)
        lenses.append(lens)
        hinge = (cx + side * rx * 0.98, cy - 0.45 * ry)
        temples.append(np.array([hinge, (side * 1.02 * a + dx * 0.5, layout.eye_y - 0.08 * a)]))
        if eyewear.shape == "browline":
            top = lens[lens[:, 1] <= cy - 0.35 * ry]
            browline.append(top[np.argsort(top[:, 0])])
    inner = layout.eye_sep - rx * 0.95
    bridge = np.array(
        [[dx - inner, cy - 0.3 * ry], [dx, cy - 0.42 * ry], [dx + inner, cy - 0.3 * ry]]
    )
    return GlassesParts(lenses, bridge, temples, browline, eyewear.thickness * a)


def draw_glasses(canvas: Canvas, eyewear: Eyewear, parts: GlassesParts) -> None:
    for lens in parts.lenses:
        canvas.fill(lens, eyewear.lens_tint)
        draw_lens_glint(canvas, lens, eyewear)
    draw_frame(canvas, parts, eyewear.frame_color)


def draw_glasses_mask(canvas: Canvas, parts: GlassesParts) -> None:
    for lens in parts.lenses:
        canvas.fill(lens, 255)
    draw_frame(canvas, parts, 255)


def draw_frame(canvas: Canvas, parts: GlassesParts, color: Color | int) -> None:
    for temple in parts.temples:
        canvas.stroke(temple, parts.thickness, color)
    canvas.stroke(parts.bridge, parts.thickness, color)
    for lens in parts.lenses:
        canvas.stroke(lens, parts.thickness, color, closed=True)
    for top in parts.browline:
        canvas.stroke(top, parts.thickness * 2.6, color)


def draw_lens_glint(canvas: Canvas, lens: Points, eyewear: Eyewear) -> None:
    """A slanted reflection: the cue that there is glass in front of the eye at all."""
    cx, cy = lens.mean(axis=0)
    rx = np.ptp(lens[:, 0]) / 2
    ry = np.ptp(lens[:, 1]) / 2
    glint = ellipse(cx - 0.25 * rx, cy - 0.3 * ry, 0.38 * rx, 0.09 * ry + 0.05 * rx, n=20)
    alpha = 70 if eyewear.lens_tint[3] > 128 else 95
    canvas.fill(rotated(glint, (cx - 0.25 * rx, cy - 0.3 * ry), -35), (255, 255, 255, alpha))


def apply_light_and_noise(pixels: np.ndarray, shot: Shot, rng: np.random.Generator) -> np.ndarray:
    """Directional light and sensor noise, applied at the final size where they are cheap."""
    direction, strength, brightness = shot.light
    size = pixels.shape[0]
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    field = brightness * (
        1 + strength * (math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None])
    )
    # Luminance noise only: one draw per pixel instead of three, and real sensor noise is mostly
    # shared by the colour channels anyway.
    noise = rng.standard_normal((size, size, 1), dtype=np.float32) * shot.noise
    out = pixels * field[..., None] + noise + 0.5
    return np.clip(out, 0, 255, out=out).astype(np.uint8)
