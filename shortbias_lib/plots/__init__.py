"""Plotting that no experiment owns (each experiment's figures are in its subpackage).

- :mod:`.common`: the book's style and legibility check, colours, bands, schedule panels;
- :mod:`.explorer`: an ipywidgets explorer of schedules on the noisy quadratic.

Imports no experiment. Its modules' public names are re-exported here.
"""

from .common import (SCHEDULE_COLORS, COLUMN_PX, MIN_DISPLAYED_PT, BOOK_STYLE, LegibilityWarning,
                     natural_width_px, displayed_scale, smallest_displayed_font_pt, check_legible,
                     watch_legibility, WATCH_HOOK, use_book_style, figure, band, schedule_panels,
                     mark_minima, quadratic_contours, paper_figure1, theorem1_figure, unrolled_sgd_graph)
from .explorer import COLORS, LABELS, plot_explore, show, make_explorer
