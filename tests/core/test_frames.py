import numpy as np
import pytest

from audioenc.core.frames import frame_centres, frame_starts, frame_times


def test_frame_times():
    assert np.allclose(frame_times(3, 25.0), [0.0, 0.04, 0.08, 0.12])


@pytest.mark.parametrize("frames", [0, 1, 7, 1001])
@pytest.mark.parametrize("rate", [100.0, 12.5, 100 / 3, 7.3])
def test_starts_and_centres_are_the_index_formulas_to_the_bit(frames, rate):
    assert np.array_equal(frame_starts(frames, rate), np.arange(frames) / rate)
    assert np.array_equal(frame_times(frames, rate)[:-1], frame_starts(frames, rate))
    assert np.array_equal(frame_centres(frames, rate), (np.arange(frames) + 0.5) / rate)
    assert np.array_equal(frame_centres(frames, rate, milliseconds=True), (np.arange(frames) + 0.5) * 1000.0 / rate)
