"""Boxes and labels drawn on YUV 4:2:0 planes."""

from __future__ import annotations

import numpy as np

from service.video.draw import PALETTE_RGB, TEXT_Y, draw_tracks, split_planes, yuv_of

W, H = 320, 240


def _grey() -> np.ndarray:
    return np.full((H * 3 // 2, W), 128, np.uint8)


def test_colours_convert_as_bt601_limited_range() -> None:
    assert yuv_of((255, 255, 255)) == (235, 128, 128)
    assert yuv_of((0, 0, 0)) == (16, 128, 128)
    y, u, v = yuv_of((0, 230, 64))  # green: dark-blue-ish chroma below neutral
    assert y > 128 and u < 128 and v < 128


def test_a_track_gets_an_outline_in_its_colour_and_a_label_above_it() -> None:
    planes = _grey()
    draw_tracks(planes, W, H, [{"track_id": 1, "box": [41.3, 61.7, 201.0, 181.9], "score": 0.87}])
    y, u, v = split_planes(planes, W, H)
    colour = yuv_of(PALETTE_RGB[0])
    # the outline, from even corners (40, 60) to (200, 180), two luma pixels thick
    assert (y[60:62, 40:200] == colour[0]).all() and (y[178:180, 40:200] == colour[0]).all()
    assert (y[60:180, 40:42] == colour[0]).all() and (y[60:180, 198:200] == colour[0]).all()
    assert (u[30, 20:100] == colour[1]).all() and (v[30, 20:100] == colour[2]).all()
    # inside and outside the box nothing changes
    assert (y[70:170, 50:190] == 128).all() and (u[36:84, 26:94] == 128).all()
    assert (y[200:, :] == 128).all() and (y[:, 210:] == 128).all()
    # the label sits on the box's top edge, above it: its colour, with dark text in it
    label = y[:60, 40:200]
    rows = np.flatnonzero((label != 128).any(axis=1))
    assert rows.size and rows.max() == 59 and rows.min() > 30
    assert (label == colour[0]).sum() > 100 and (label < TEXT_Y + 40).sum() > 20


def test_a_label_goes_inside_a_box_at_the_top_and_boxes_past_the_edges_are_clipped() -> None:
    planes = _grey()
    tracks = [
        {"track_id": 2, "box": [0.0, 0.0, 100.0, 80.0], "score": 0.5},
        {"track_id": 3, "box": [300.0, 220.0, 320.0, 240.0], "score": 0.99},
    ]
    draw_tracks(planes, W, H, tracks)
    y, _, _ = split_planes(planes, W, H)
    assert (y[0:2, 0:100] == yuv_of(PALETTE_RGB[1])[0]).all()
    assert (y[2:12, 4:30] != 128).any()  # the label inside, below the top edge
    assert (y[238:240, 300:320] == yuv_of(PALETTE_RGB[2])[0]).all()


def test_no_track_draws_nothing() -> None:
    planes = _grey()
    draw_tracks(planes, W, H, [])
    assert (planes == 128).all()
