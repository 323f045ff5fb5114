"""Chart geometry (webapp/charts.py): a y axis of round ticks from 0 to just above the data."""

import pytest

from webapp.charts import HEIGHT, bar_chart, y_ticks


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (9, [0, 5, 10]),
        (16, [0, 5, 10, 15, 20]),
        (31, [0, 10, 20, 30, 40]),
        (100, [0, 50, 100]),
        (1234, [0, 500, 1000, 1500]),
        (987_654, [0, 500_000, 1_000_000]),
    ],
)
def test_ticks_are_round_and_end_just_above_the_maximum(maximum, ticks):
    assert y_ticks(maximum) == ticks


def test_bars_fill_the_width_in_percent_and_the_height_in_pixels():
    chart = bar_chart([("a", 0), ("b", 5), ("c", 10)])
    assert [round(bar.x + bar.width / 2, 3) for bar in chart["bars"]] == [16.667, 50.0, 83.333]
    tallest = chart["bars"][2]
    assert tallest.y + tallest.height == chart["baseline"] < HEIGHT
    assert chart["bars"][1].height == tallest.height / 2
    assert [text for _, text in chart["ticks"]] == ["0", "5", "10"]
    assert chart["summary"] == "3 bars, 15 in all, highest 10 at c"
    assert not chart["empty"]


def test_the_axis_is_as_wide_as_its_longest_label():
    narrow = bar_chart([("a", 9)])["axis_width"]
    wide = bar_chart([("a", 987_654)])["axis_width"]  # "1,000,000"
    assert narrow < wide and wide >= 9 * 7


def test_about_eight_labels_every_other_one_minor():
    labels = bar_chart([(f"{hour:02}:00", hour) for hour in range(48)])["labels"]
    assert [label.text for label in labels] == [f"{hour:02}:00" for hour in range(0, 48, 6)]
    assert [label.minor for label in labels] == [False, True] * 4


def test_no_data_is_an_empty_chart():
    assert bar_chart([("a", 0), ("b", 0)])["empty"]
    assert bar_chart([])["empty"]
