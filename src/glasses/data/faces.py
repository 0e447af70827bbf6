"""Who appears in each synthetic image, and how: people, their glasses, and per-image variation.

Each synthetic person keeps identity traits (skin, face shape, hair, eyes, brows) across several
images, so group-aware splits behave like they would on real photographs. Per-image jitter
(pose, scale, light, background, noise) and look-alikes in both classes (bushy brows, shadows
under the eyes, fringes and headbands across the forehead, eyeliner) keep the task from reducing
to "dark pixels near the eyes", while the glasses themselves stay clearly learnable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLEAR_SHAPES = ("round", "oval", "rectangular", "browline")
SUNGLASSES = "sunglasses"
GLASSES_KINDS = (*CLEAR_SHAPES, SUNGLASSES)
NO_GLASSES = "none"
SUNGLASSES_SHARE = 0.25
IMAGES_PER_PERSON = (4, 10)
HAIR_STYLE_WEIGHTS = {"short": 0.28, "fringe": 0.22, "side_part": 0.18, "long": 0.22, "bald": 0.10}

# Eye-region look-alikes are a little more frequent without glasses, so that darkness around
# the eyes does not by itself predict the label.
SHADOW_RATE = {False: 0.40, True: 0.20}
HEADBAND_RATE = {False: 0.20, True: 0.10}
EYELINER_RATE = {False: 0.30, True: 0.15}

Color = tuple[int, int, int]
Rgba = tuple[int, int, int, int]
Points = np.ndarray  # (n, 2) float array in face coordinates (fractions of the image width)

SKIN_TONES = np.array(
    [[255, 226, 204], [241, 194, 160], [224, 172, 130], [198, 134, 96], [160, 102, 70],
     [112, 72, 50], [78, 52, 38]],
    dtype=float,
)  # fmt: skip
HAIR_COLORS: tuple[Color, ...] = (
    (24, 20, 20), (55, 38, 28), (105, 70, 42), (140, 62, 34), (212, 176, 110), (168, 166, 160),
)  # fmt: skip
EYE_COLORS: tuple[Color, ...] = (
    (88, 54, 30), (45, 30, 20), (70, 118, 176), (78, 128, 82), (128, 108, 58), (118, 128, 138),
)  # fmt: skip
FRAME_COLORS: tuple[Color, ...] = (
    (18, 18, 20), (92, 54, 30), (196, 160, 78), (182, 186, 192), (168, 34, 40), (30, 44, 100),
    (120, 120, 126),
)  # fmt: skip
SUN_TINTS: tuple[Color, ...] = ((22, 22, 26), (58, 38, 24), (28, 48, 34), (36, 52, 96))


@dataclass(frozen=True)
class Eyewear:
    """One pair of glasses; sizes are relative to the face half-width."""

    shape: str
    frame_color: Color
    thickness: float
    lens_rx: float
    aspect: float
    lens_tint: Rgba


@dataclass(frozen=True)
class Person:
    """Identity traits that stay fixed across all images of one synthetic person."""

    group: str
    skin: Color
    half_width: float
    aspect: float
    chin_taper: float
    squareness: float
    hair_color: Color
    hair_style: str
    eye_color: Color
    eye_spacing: float
    brow_color: Color
    brow_thickness: float
    glasses: Eyewear
    sunglasses: Eyewear


@dataclass(frozen=True)
class Shot:
    """Everything that varies from one image of a person to the next."""

    person: Person
    eyewear: Eyewear | None
    kind: str
    center: tuple[float, float]
    angle: float
    scale: float
    turn: float
    eye_open: float
    gaze: float
    smile: float
    clothes: Color
    background: tuple[Color, Color, float]
    light: tuple[float, float, float]
    noise: float
    shadow_alpha: int
    headband: Color | None
    headband_height: float
    eyeliner: bool


def plan_shots(rng: np.random.Generator, count: int, n_glasses: int) -> list[Shot]:
    """Decide who appears in each image and with which glasses, hitting the class counts exactly."""
    per_person = _images_per_person(rng, count)
    wears = rng.permutation(np.arange(count) < n_glasses)
    n_sun = round(SUNGLASSES_SHARE * n_glasses)
    sunny = iter(rng.permutation(np.arange(n_glasses) < n_sun))
    shots = []
    image = 0
    for index, n_images in enumerate(per_person):
        person = make_person(rng, f"p{index:04d}")
        for _ in range(n_images):
            if not wears[image]:
                eyewear, kind = None, NO_GLASSES
            elif next(sunny):
                eyewear, kind = person.sunglasses, SUNGLASSES
            else:
                eyewear, kind = person.glasses, person.glasses.shape
            shots.append(make_shot(rng, person, eyewear, kind))
            image += 1
    return shots


def _images_per_person(rng: np.random.Generator, count: int) -> list[int]:
    """Split `count` into persons of 4-10 images; the last one absorbs a short remainder."""
    low, high = IMAGES_PER_PERSON
    sizes: list[int] = []
    remaining = count
    while remaining > 0:
        n = min(int(rng.integers(low, high + 1)), remaining)
        if remaining - n < low:
            n = remaining
        sizes.append(n)
        remaining -= n
    return sizes


def make_person(rng: np.random.Generator, group: str) -> Person:
    """Traits drawn once per person, so images of one person look alike across the split."""
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    low = int(tone)
    skin = SKIN_TONES[low] + (tone - low) * (
        SKIN_TONES[min(low + 1, len(SKIN_TONES) - 1)] - SKIN_TONES[low]
    )
    skin = np.clip(skin + rng.normal(0, 6, 3), 0, 255)
    # Hair varies in lightness, not hue: independent channel noise turns black hair purple.
    hair = shade(HAIR_COLORS[rng.integers(len(HAIR_COLORS))], rng.uniform(0.8, 1.2))
    # About a third of people get dark, bushy brows whatever their hair: a glasses look-alike.
    bushy = rng.random() < 0.35
    brow = (28, 22, 22) if bushy else tuple(int(c * 0.7) for c in hair)
    return Person(
        group=group,
        skin=tuple(int(c) for c in skin),
        half_width=rng.uniform(0.23, 0.28),
        aspect=rng.uniform(1.2, 1.42),
        chin_taper=rng.uniform(0.0, 0.28),
        squareness=rng.uniform(2.0, 2.8),
        hair_color=hair,
        hair_style=str(rng.choice(list(HAIR_STYLE_WEIGHTS), p=list(HAIR_STYLE_WEIGHTS.values()))),
        eye_color=_jitter(rng, EYE_COLORS[rng.integers(len(EYE_COLORS))], 10),
        eye_spacing=rng.uniform(0.39, 0.46),
        brow_color=brow,
        brow_thickness=rng.uniform(0.10, 0.16) if bushy else rng.uniform(0.04, 0.09),
        glasses=make_eyewear(rng, sun=False),
        sunglasses=make_eyewear(rng, sun=True),
    )


def make_eyewear(rng: np.random.Generator, sun: bool) -> Eyewear:
    """A person's own pair; half are hairline-thin, the hardest case for a 64 px classifier."""
    if sun:
        shape = ("round", "oval", "rectangular")[rng.integers(3)]
        tint = SUN_TINTS[rng.integers(len(SUN_TINTS))]
        lens_tint = (*tint, int(rng.integers(205, 245)))
        lens_rx, aspect = rng.uniform(0.29, 0.34), rng.uniform(0.75, 0.95)
    else:
        shape = CLEAR_SHAPES[rng.integers(len(CLEAR_SHAPES))]
        lens_tint = (215, 232, 250, int(rng.integers(20, 50)))
        lens_rx, aspect = rng.uniform(0.25, 0.31), rng.uniform(0.62, 0.82)
    if shape == "round":
        aspect = 1.0 if not sun else 0.95
    thin = rng.random() < 0.5
    return Eyewear(
        shape=shape,
        frame_color=_jitter(rng, FRAME_COLORS[rng.integers(len(FRAME_COLORS))], 10),
        thickness=rng.uniform(0.04, 0.06) if thin else rng.uniform(0.08, 0.13),
        lens_rx=lens_rx,
        aspect=aspect,
        lens_tint=lens_tint,
    )


def make_shot(rng: np.random.Generator, person: Person, eyewear: Eyewear | None, kind: str) -> Shot:
    """Per-image variation, so a model has to find the glasses rather than memorise a photo."""
    wears = eyewear is not None
    light_angle = rng.uniform(0, 2 * np.pi)
    # Muted towards grey: saturated backdrops are rare behind real portraits.
    bg_a = mix(
        tuple(int(c) for c in rng.integers(30, 235, 3)), (128, 128, 128), rng.uniform(0, 0.6)
    )
    bg_b = _jitter(rng, bg_a, 45)
    return Shot(
        person=person,
        eyewear=eyewear,
        kind=kind,
        center=(0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.04, 0.04)),
        angle=rng.uniform(-10, 10),
        scale=rng.uniform(0.9, 1.1),
        turn=rng.uniform(-1, 1),
        eye_open=rng.uniform(0.7, 1.1) if rng.random() > 0.05 else 0.25,
        gaze=rng.uniform(-0.25, 0.25),
        smile=rng.uniform(-0.2, 1.0),
        clothes=tuple(int(c) for c in rng.integers(20, 235, 3)),
        background=(bg_a, bg_b, rng.uniform(0, 2 * np.pi)),
        light=(light_angle, rng.uniform(0.0, 0.35), rng.uniform(0.7, 1.15)),
        noise=rng.uniform(1.5, 7.0),
        shadow_alpha=int(rng.integers(60, 140)) if rng.random() < SHADOW_RATE[wears] else 0,
        headband=_headband_color(rng) if rng.random() < HEADBAND_RATE[wears] else None,
        headband_height=rng.uniform(0.15, 0.45),
        eyeliner=bool(rng.random() < EYELINER_RATE[wears]),
    )


def _headband_color(rng: np.random.Generator) -> Color:
    """Half of the headbands are near-black, as dark as a frame or a sunglass lens."""
    if rng.random() < 0.5:
        return _jitter(rng, (25, 25, 30), 10)
    return tuple(int(c) for c in rng.integers(30, 240, 3))


def _jitter(rng: np.random.Generator, color: Color, spread: float) -> Color:
    return tuple(int(c) for c in np.clip(np.asarray(color) + rng.normal(0, spread, 3), 0, 255))


def shade(color: Color, factor: float) -> Color:
    return tuple(int(min(255, c * factor)) for c in color)


def mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=True))
