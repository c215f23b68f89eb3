"""Bar charts drawn on the server as inline SVG: the geometry here, the markup in ``templates/charts.html``.

A chart is a picture of a table the page also shows (the table stays the accessible source); its SVG has a
title and a description and each bar a tooltip with its value as the page wrote it. Values are integers
(micro-units, seconds, tenths of a percent); the geometry is integer arithmetic, in the SVG's own units, and
the browser scales it to the page's width. Negative values are drawn as empty bars (the table shows them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 640
COLUMNS_HEIGHT = 260
ROW_HEIGHT = 30
LABELS_HEIGHT = 26  # below the columns: the day under its bars
ROW_LABELS_WIDTH = 250  # left of the rows: the destination or customer
COLUMN_LABELS_SHOWN_MAX = 4  # days named under the columns; past it every n-th day only


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    series: str  # the CSS class's suffix: its colour
    text: str  # what it shows, as the page writes the value


@dataclass(frozen=True, slots=True)
class Label:
    x: int
    y: int
    text: str
    anchor: str  # start, middle, end


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: list[Label]


@dataclass(frozen=True, slots=True)
class Group:
    """One group of bars: a day with its revenue and cost, a destination with its revenue."""

    label: str
    values: Sequence[int]
    texts: Sequence[str]  # each value as the page shows it


def _scaled(value: int, largest: int, length: int) -> int:
    return 0 if largest <= 0 or value <= 0 else max(1, value * length // largest)


def columns(groups: Sequence[Group], series: Sequence[str]) -> Chart:
    """Vertical bars, one group per day, ``series`` side by side within it."""
    plot_height = COLUMNS_HEIGHT - LABELS_HEIGHT
    largest = max((value for group in groups for value in group.values), default=0)
    slot = WIDTH // max(len(groups), 1)
    bar_width = max(1, (slot * 4 // 5) // max(len(series), 1))
    every = max(1, -(-len(groups) // COLUMN_LABELS_SHOWN_MAX))
    bars: list[Bar] = []
    labels: list[Label] = []
    for index, group in enumerate(groups):
        left = index * slot + slot // 10
        for offset, (name, value, text) in enumerate(zip(series, group.values, group.texts, strict=True)):
            height = _scaled(value, largest, plot_height - 4)
            bars.append(Bar(left + offset * bar_width, plot_height - height, bar_width, height, name, text))
        if index % every == 0:  # a label runs right from its slot on the left half, left from it on the right
            centre = index * slot + slot // 2
            left_half = centre < WIDTH // 2
            x = index * slot if left_half else (index + 1) * slot
            labels.append(Label(x, COLUMNS_HEIGHT - 4, group.label, "start" if left_half else "end"))
    return Chart(WIDTH, COLUMNS_HEIGHT, bars, labels)


def rows(groups: Sequence[Group], series: str) -> Chart:
    """Horizontal bars, one a row (a destination, a customer), labelled on their left."""
    plot_width = WIDTH - ROW_LABELS_WIDTH - 8
    largest = max((group.values[0] for group in groups), default=0)
    bars: list[Bar] = []
    labels: list[Label] = []
    for index, group in enumerate(groups):
        top = index * ROW_HEIGHT
        length = _scaled(group.values[0], largest, plot_width)
        bars.append(Bar(ROW_LABELS_WIDTH, top + 4, length, ROW_HEIGHT - 8, series, group.texts[0]))
        labels.append(Label(ROW_LABELS_WIDTH - 6, top + ROW_HEIGHT - 8, group.label, "end"))
    return Chart(WIDTH, max(len(groups), 1) * ROW_HEIGHT, bars, labels)
