"""The em32 capsule geometry of `audioenc.audio.em32` against its published description."""

from __future__ import annotations

import numpy as np

from audioenc.audio.em32 import (
    EM32_CAPSULE_ANGLES_DEG,
    EM32_RADIUS_M,
    capsule_directions,
    capsule_positions,
    plane_wave_delays,
)


def test_32_distinct_unit_vectors_spread_almost_uniformly():
    """Published layout ~ a pentakis dodecahedron: the checks are what such a layout must satisfy.

    References: a uniform 32-point design has mean direction 0 and second moment I/3; the
    pentakis dodecahedron's neighbouring vertices/face centres are ~37.4 degrees apart.
    """
    directions = capsule_directions()
    assert directions.shape == (32, 3)
    assert np.allclose(np.linalg.norm(directions, axis=1), 1.0)
    assert len({tuple(np.round(d, 6)) for d in directions}) == 32
    assert np.linalg.norm(directions.mean(axis=0)) < 0.01
    assert np.allclose(directions.T @ directions / 32, np.eye(3) / 3, atol=0.01)
    angles = np.degrees(np.arccos(np.clip(directions @ directions.T, -1, 1)))
    np.fill_diagonal(angles, 180.0)
    nearest = angles.min(axis=1)
    assert nearest.min() > 35.0 and nearest.max() < 40.0


def test_published_values_and_radius():
    """Hand check of capsule 1 (θ 69°, φ 0°) and capsule 16 (θ 159°, φ 89°) at r = 4.2 cm."""
    assert len(EM32_CAPSULE_ANGLES_DEG) == 32 and EM32_RADIUS_M == 0.042
    positions = capsule_positions(center=(1.0, 2.0, 1.5))
    assert np.allclose(positions[0], [1.0 + 0.042 * np.sin(np.radians(69)), 2.0, 1.5 + 0.042 * np.cos(np.radians(69))])
    theta, phi = np.radians(159), np.radians(89)
    expected = [
        1.0 + 0.042 * np.sin(theta) * np.cos(phi),
        2.0 + 0.042 * np.sin(theta) * np.sin(phi),
        1.5 + 0.042 * np.cos(theta),
    ]
    assert np.allclose(positions[15], expected)
    assert np.allclose(np.linalg.norm(positions - [1.0, 2.0, 1.5], axis=1), 0.042)


def test_plane_wave_delays_lead_on_the_facing_side():
    """Source straight ahead (+x): capsule 1 (θ 69°, φ 0°) leads by r sin69° / c (hand value)."""
    delays = plane_wave_delays(np.array([1.0, 0.0, 0.0]))
    assert np.isclose(delays[0], -0.042 * np.sin(np.radians(69)) / 343.0)
    assert int(np.argmin(delays)) in (0, 2)  # capsules 1 and 3 (θ 69°/111°, φ 0°) face +x most
    assert np.isclose(delays.max() - delays.min(), 2 * 0.042 * np.sin(np.radians(69)) / 343.0)
