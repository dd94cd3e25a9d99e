"""model.save / clvforecast.load_model: JSON only, identical predictions after a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvforecast as cf
from clvforecast.exceptions import NotFittedError


@pytest.fixture(scope="module")
def models(cdnow_cal: pd.DataFrame) -> tuple[cf.BetaGeo, cf.GammaGamma]:
    return cf.BetaGeo().fit(cdnow_cal), cf.GammaGamma().fit(cdnow_cal)


def test_round_trip_gives_identical_predictions(tmp_path: Path, models, cdnow_cal: pd.DataFrame) -> None:  # noqa: ANN001
    bg, gg = models
    bg_path, gg_path = bg.save(tmp_path / "bg.json"), gg.save(tmp_path / "gg.json")
    bg2, gg2 = cf.load_model(bg_path), cf.load_model(str(gg_path))
    assert isinstance(bg2, cf.BetaGeo) and isinstance(gg2, cf.GammaGamma)
    pd.testing.assert_series_equal(bg2.params_, bg.params_, check_exact=True)
    pd.testing.assert_frame_equal(bg2.variance_matrix_, bg.variance_matrix_, check_exact=True)
    pd.testing.assert_frame_equal(bg2.summary, bg.summary, check_exact=True)
    for attr in ("log_likelihood_", "n_customers_", "time_unit_", "penalizer_", "fit_info_"):
        assert getattr(bg2, attr) == getattr(bg, attr), attr
        assert getattr(gg2, attr) == getattr(gg, attr), attr
    pd.testing.assert_series_equal(bg2.expected_purchases(cdnow_cal, "52W"),
                                   bg.expected_purchases(cdnow_cal, "52W"), check_exact=True)
    pd.testing.assert_series_equal(bg2.probability_alive(cdnow_cal), bg.probability_alive(cdnow_cal),
                                   check_exact=True)
    pd.testing.assert_series_equal(bg2.probability_of_purchases(cdnow_cal, 39, 2),
                                   bg.probability_of_purchases(cdnow_cal, 39, 2), check_exact=True)
    assert bg2.expected_purchases_new_customer(52) == bg.expected_purchases_new_customer(52)
    pd.testing.assert_series_equal(gg2.expected_spend(cdnow_cal), gg.expected_spend(cdnow_cal),
                                   check_exact=True)
    pd.testing.assert_frame_equal(
        cf.predictive_clv(bg2, gg2, cdnow_cal, horizon="12M", discount_rate=0.1),
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", discount_rate=0.1),
        check_exact=True,
    )


def test_the_file_is_plain_json_with_units_and_metadata(tmp_path: Path, models) -> None:  # noqa: ANN001
    bg, _ = models
    d = json.loads(bg.save(tmp_path / "bg.json").read_text(encoding="utf-8"))
    assert d["format"] == "clvforecast.model" and d["model"] == "BetaGeo"
    assert d["time_unit"] == "W" and d["n_customers"] == 2357 and d["penalizer"] == 0.0
    assert set(d["params"]) == {"r", "alpha", "a", "b"}
    assert np.array(d["variance_matrix"]).shape == (4, 4)
    assert d["clvforecast_version"] == cf.__version__ and d["lifetimes_version"]
    assert d["fit_info"]["n_unique_histories"] == bg.fit_info_["n_unique_histories"]


def test_missing_standard_errors_are_stored_as_null(tmp_path: Path, models) -> None:  # noqa: ANN001
    _, gg = models
    weak = cf.load_model(gg.save(tmp_path / "gg.json"))
    weak.variance_matrix_.iloc[:, :] = np.nan
    weak.log_covariance_.iloc[:, :] = np.nan
    path = weak.save(tmp_path / "weak.json")
    assert json.loads(path.read_text())["variance_matrix"][0] == [None, None, None]
    assert cf.load_model(path).summary["se"].isna().all()


def test_bad_files_are_refused_with_a_clear_message(tmp_path: Path, models) -> None:  # noqa: ANN001
    bg, _ = models
    (tmp_path / "x.json").write_text("not json")
    with pytest.raises(ValueError, match="not a clvforecast model file"):
        cf.load_model(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"params": {}}))
    with pytest.raises(ValueError, match="not a clvforecast model file"):
        cf.load_model(tmp_path / "y.json")
    d = bg.to_dict()
    (tmp_path / "new.json").write_text(json.dumps({**d, "format_version": 99}))
    with pytest.raises(ValueError, match="upgrade clvforecast"):
        cf.load_model(tmp_path / "new.json")
    (tmp_path / "other.json").write_text(json.dumps({**d, "model": "GompertzNBD"}))
    with pytest.raises(ValueError, match="unknown model type 'GompertzNBD'"):
        cf.load_model(tmp_path / "other.json")
    broken = {**d, "params": {"r": 1.0}}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="incomplete or corrupt: parameters missing: alpha, a, b"):
        cf.load_model(tmp_path / "broken.json")


def test_an_unfitted_model_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        cf.BetaGeo().save(tmp_path / "bg.json")
    assert not (tmp_path / "bg.json").exists()
