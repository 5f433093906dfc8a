import numpy as np
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadow_service.analysis import series


def test_regularise_averages_duplicates_and_marks_gaps():
    times = [0, 300, 300, 900, 1200, 605]
    values = [1.0, 2.0, 4.0, 5.0, 6.0, 3.0]
    grid_times, grid, stats = series.regularise(times, values, step_s=300)
    assert grid_times.tolist() == [0, 300, 600, 900, 1200]
    assert grid.tolist() == [1.0, 3.0, 3.0, 5.0, 6.0]
    assert stats["duplicates"] == 1

    _, grid, stats = series.regularise([0, 1200], [1, 2], step_s=300)
    assert np.isnan(grid[1:4]).all()
    assert stats["empty_slots"] == 3


def test_clean_clips_fills_and_trims_and_says_so():
    cleaned = series.clean([None, 5.0, np.nan, 7.0, 250.0, np.inf],
                           bounds=(0, 100))
    assert cleaned.values.tolist() == [5.0, 6.0, 7.0, 100.0]
    assert cleaned.clipped == 1
    assert cleaned.filled == 1
    assert any("trimmed" in note for note in cleaned.notes)


def test_non_numbers_count_as_missing():
    cleaned = series.clean([1.0, "x", {}, "4"])
    assert cleaned.values.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert cleaned.filled == 2


def test_long_gap_is_filled_from_one_season_earlier():
    season = 10
    pattern = np.arange(season, dtype=float)
    values = np.tile(pattern, 3)
    values[12:19] = np.nan
    cleaned = series.clean(values, season=season, max_interp_steps=3)
    np.testing.assert_allclose(cleaned.values, np.tile(pattern, 3))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True,
                                               allow_infinity=True,
                                               width=32)),
                max_size=40))
def test_clean_returns_only_finite_values_in_bounds(values):
    cleaned = series.clean(values, bounds=(0, 100), season=7)
    assert np.isfinite(cleaned.values).all()
    assert (cleaned.values >= 0).all() and (cleaned.values <= 100).all()


def test_values_too_large_to_be_measurements_count_as_missing():
    cleaned = series.clean([5.0, 1e300, 7.0, -1e200, 9.0], bounds=(0, None))
    assert cleaned.values.tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert cleaned.clipped == 0
    assert "left out 2 values beyond 1e+100 in magnitude" in cleaned.notes
