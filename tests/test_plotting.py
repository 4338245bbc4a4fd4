"""Figures are written whole or not at all."""

import matplotlib.pyplot as plt
import pytest

from migsd.errors import MigsdError
from migsd.plotting import save_figure


def test_a_figure_is_written_as_png_into_a_new_folder_and_closed(tmp_path):
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "new" / "line.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(figure.number)


def test_a_figure_that_fails_to_draw_leaves_no_file_and_is_closed(tmp_path):
    figure, axis = plt.subplots()
    axis.text(0.5, 0.5, r"$\unknowncommand$")  # mathtext fails only when drawn
    with pytest.raises(MigsdError, match=r"(?s)broken.png.*nothing was written"):
        save_figure(figure, tmp_path / "broken.png")
    assert list(tmp_path.iterdir()) == []
    assert not plt.fignum_exists(figure.number)
