"""Geometry of the mh acoustics Eigenmike em32: 32 capsules on a rigid sphere of radius 4.2 cm.

Angles are the published capsule positions from mh acoustics' documentation (appendix of
"em32 Eigenmike microphone array release notes", v17.0, 2013; the same table appears in the
EigenStudio user manual): colatitude θ (0° = up, +z) and azimuth φ (0° = the front, +x,
growing counter-clockwise seen from above, towards +y), in degrees, in channel order 1..32.
The capsules lie close to the face centres and vertices of a pentakis dodecahedron, so the
32 directions are distinct and spread almost uniformly (checked in tests/audio/test_em32.py:
nearest neighbours 36.8-37.3° apart, mean direction ~0, second moment ~I/3).

Coordinates: metres, right-handed, x front, y left, z up; a unit vector from (θ, φ) is
``(sin θ cos φ, sin θ sin φ, cos θ)``.

Plane-wave arrival times used by the tests: a far source in unit direction ``u`` reaches
capsule ``m`` (unit direction ``n_m``, radius ``r``) at ``τ_m = -r (n_m · u) / c`` seconds
relative to the array centre (``c`` = speed of sound): capsules facing the source hear it
first. This is the free-field (open sphere) delay; on the real rigid sphere, diffraction
adds level differences and makes low-frequency delays up to 1.5x longer, which the
simulations here do not model (see :mod:`audioenc.audio.synth_scenes`).
"""

from __future__ import annotations

import numpy as np

EM32_RADIUS_M = 0.042
"""Radius of the em32 sphere in metres (4.2 cm)."""

SPEED_OF_SOUND_M_S = 343.0
"""Speed of sound in m/s (dry air, 20 °C) used for delays."""

EM32_CAPSULE_ANGLES_DEG: tuple[tuple[float, float], ...] = (
    # (colatitude θ, azimuth φ) in degrees, capsules 1..32; mh acoustics em32 release notes v17.0.
    (69.0, 0.0),
    (90.0, 32.0),
    (111.0, 0.0),
    (90.0, 328.0),
    (32.0, 0.0),
    (55.0, 45.0),
    (90.0, 69.0),
    (125.0, 45.0),
    (148.0, 0.0),
    (125.0, 315.0),
    (90.0, 291.0),
    (55.0, 315.0),
    (21.0, 91.0),
    (58.0, 90.0),
    (121.0, 90.0),
    (159.0, 89.0),
    (69.0, 180.0),
    (90.0, 212.0),
    (111.0, 180.0),
    (90.0, 148.0),
    (32.0, 180.0),
    (55.0, 225.0),
    (90.0, 249.0),
    (125.0, 225.0),
    (148.0, 180.0),
    (125.0, 135.0),
    (90.0, 111.0),
    (55.0, 135.0),
    (21.0, 269.0),
    (58.0, 270.0),
    (122.0, 270.0),
    (159.0, 271.0),
)
"""The 32 published capsule angles (θ colatitude, φ azimuth), degrees, in channel order."""

NUM_CAPSULES = len(EM32_CAPSULE_ANGLES_DEG)
"""32."""


def unit_vector(colatitude_deg: float | np.ndarray, azimuth_deg: float | np.ndarray) -> np.ndarray:
    """Unit vector(s) ``[..., 3]`` for colatitude θ and azimuth φ in degrees."""
    theta = np.deg2rad(np.asarray(colatitude_deg, dtype=np.float64))
    phi = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)


def capsule_directions() -> np.ndarray:
    """Unit vectors ``[32, 3]`` from the array centre to each capsule, channel order."""
    angles = np.asarray(EM32_CAPSULE_ANGLES_DEG)
    return unit_vector(angles[:, 0], angles[:, 1])


def capsule_positions(
    center: tuple[float, float, float] = (0.0, 0.0, 0.0), radius: float = EM32_RADIUS_M
) -> np.ndarray:
    """Capsule positions ``[32, 3]`` in metres for an array centred at ``center``."""
    return np.asarray(center, dtype=np.float64)[None, :] + radius * capsule_directions()


def plane_wave_delays(
    direction: np.ndarray, radius: float = EM32_RADIUS_M, speed_of_sound: float = SPEED_OF_SOUND_M_S
) -> np.ndarray:
    """Free-field arrival times ``[32]`` (s) of a plane wave from unit ``direction``, relative to the centre.

    ``τ_m = -radius * (n_m · u) / c``; negative = earlier than at the centre.
    """
    direction = np.asarray(direction, dtype=np.float64)
    direction = direction / np.linalg.norm(direction)
    return -radius * (capsule_directions() @ direction) / speed_of_sound
