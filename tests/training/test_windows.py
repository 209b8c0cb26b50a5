"""Windows cut from the series: every pair in order, and a validation window no training target
overlaps."""

from __future__ import annotations

import dataclasses

import numpy as np

from training.rolling_origin import HORIZON
from training.windows import WindowSets, min_length, windows_of


def test_windows_of_cuts_every_input_and_target_pair_in_order() -> None:
    y = np.arange(30.0)
    x, t = windows_of(y, 6)
    assert x.shape == (30 - 6 - HORIZON + 1, 6) and t.shape == (len(x), HORIZON)
    assert np.array_equal(x[3], y[3:9]) and np.array_equal(t[3], y[9 : 9 + HORIZON])
    assert windows_of(y[: 6 + HORIZON - 1], 6)[0].shape == (0, 6)


def test_window_sets_hold_out_each_series_last_window_and_its_overlap() -> None:
    window = 6
    parts = {"a": np.sin(np.arange(50.0)) + 5, "short": np.arange(min_length(window) - 1.0)}
    n = 50 - window - HORIZON + 1
    bases = {name: np.zeros((len(y), HORIZON + 1)) for name, y in parts.items()}
    sets = WindowSets.build(parts, bases, window, evaluated_weight=1.0)
    assert len(sets.val_x) == 1  # "short" is too short to give both
    assert len(sets.x) == n - HORIZON == int(sets.count[0])
    z = parts["a"][-window - HORIZON : -HORIZON]
    assert np.allclose(sets.val_x[0].numpy(), (z - z.mean()) / z.std(), atol=1e-5)


def test_the_bases_are_computed_once_per_series_and_settings(tmp_path, monkeypatch) -> None:
    from training import forecasting, windows

    calls: list[int] = []
    compute = windows.ar_bases

    def counting(*args, **kwargs):
        calls.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(windows, "ar_bases", counting)
    y = np.sin(np.arange(100) / 3.0) + 5.0
    cfg = forecasting.Config()

    def bases(cfg: forecasting.Config, y: np.ndarray) -> dict[str, np.ndarray]:
        return windows.cached_bases({"a": y}, cfg.window, cfg.ar_base, tmp_path)

    first = bases(cfg, y)
    again = bases(cfg, y)
    assert len(calls) == 1 and np.array_equal(first["a"], again["a"])
    bases(cfg, y + 1.0)  # other values: computed afresh
    bases(dataclasses.replace(cfg, seasonal=False), y)
    assert len(calls) == 3
