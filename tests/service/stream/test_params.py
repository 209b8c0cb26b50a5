"""A stream session's options: the query, else the model version's stream defaults, else the
tracker's own."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.repository.manifest import ServingDefaults, StreamDefaults
from service.stream.params import StreamParams, resolve_options
from service.stream.tracking import SmoothingConfig

VERSION_DEFAULTS = ServingDefaults(
    score_threshold=0.4,
    stream=StreamDefaults(off_threshold=0.2, min_hits=1, window=1, match_distance=0.0),
)


def test_without_stream_defaults_the_trackers_own_apply() -> None:
    options = resolve_options(StreamParams(), ServingDefaults())
    assert options.smoothing == SmoothingConfig()


def test_a_versions_stream_defaults_fill_what_the_query_leaves_out() -> None:
    smoothing = resolve_options(StreamParams(), VERSION_DEFAULTS).smoothing
    assert (smoothing.off_threshold, smoothing.min_hits, smoothing.window) == (0.2, 1, 1)
    assert smoothing.match_distance == 0.0
    assert smoothing.max_misses == SmoothingConfig().max_misses  # not set by the version
    queried = resolve_options(StreamParams(min_hits=2, window=3), VERSION_DEFAULTS).smoothing
    assert (queried.min_hits, queried.window, queried.off_threshold) == (2, 3, 0.2)


def test_a_default_switch_off_above_the_queried_switch_on_is_lowered_to_it() -> None:
    smoothing = resolve_options(StreamParams(score_threshold=0.1), VERSION_DEFAULTS).smoothing
    assert (smoothing.on_threshold, smoothing.off_threshold) == (0.1, 0.1)
    with pytest.raises(ValidationError, match="off_threshold must not exceed on_threshold"):
        resolve_options(StreamParams(score_threshold=0.1, off_threshold=0.3), VERSION_DEFAULTS)
