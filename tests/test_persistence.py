"""model.save / clvforecast.load_model: JSON only, identical predictions after a round trip."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# ----------------------------------------------------------------------------------------------------------
# issue 13: no model file is trusted blindly


def _write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_a_pickle_renamed_json_is_not_a_model_file(tmp_path: Path, models) -> None:  # noqa: ANN001
    import pickle

    path = tmp_path / "bgnbd.json"
    path.write_bytes(pickle.dumps({"evil": object.__name__}))
    with pytest.raises(cf.models.ModelFileError, match="not a clvforecast model file"):
        cf.load_model(path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: {**d, "format_version": "abc"}, r"not a clvforecast model file: format_version .* got 'abc'"),
    (lambda d: {**d, "model": ["BetaGeo"]}, r"not a clvforecast model file: \"model\" must be a model name"),
    (lambda d: {**d, "params": {**d["params"], "r": -0.5}}, r"parameter 'r' = -0.5 breaks the rule r > 0"),
    (lambda d: {**d, "params": {**d["params"], "alpha": 0}}, r"parameter 'alpha' = 0 breaks the rule alpha > 0"),
    (lambda d: {**d, "params": {**d["params"], "a": -1}}, r"parameter 'a' = -1 breaks the rule a > 0"),
    (lambda d: {**d, "params": {**d["params"], "b": float("nan")}}, r"parameter 'b' = nan breaks the rule: .*finite"),
    (lambda d: {**d, "params": {**d["params"], "r": float("inf")}}, r"parameter 'r' = inf breaks the rule: .*finite"),
    (lambda d: {**d, "params": {**d["params"], "r": "1"}}, r"parameter 'r' = '1' breaks the rule: it must be a number"),
    (lambda d: {**d, "time_unit": "fortnight"}, r"time_unit = 'fortnight' breaks the rule"),
    (lambda d: {**d, "variance_matrix": [[1.0]]}, r"\"variance_matrix\" must be a 4 x 4"),
    (lambda d: {**d, "n_customers": -3}, r"n_customers = -3 breaks the rule"),
    (lambda d: [d], r"not a clvforecast model file"),
])
def test_bad_values_are_refused_naming_the_key_and_the_rule(tmp_path: Path, models, change, message) -> None:  # noqa: ANN001
    bg, _ = models
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(change(bg.to_dict())), encoding="utf-8")  # NaN/Infinity written as JSON tokens
    with pytest.raises(ValueError, match=message):
        cf.load_model(path)


def test_gamma_gamma_negative_p_is_refused(tmp_path: Path, models) -> None:  # noqa: ANN001
    _, gg = models
    d = gg.to_dict()
    d["params"]["p"] = -1
    with pytest.raises(cf.models.ModelFileError, match=r"parameter 'p' = -1 breaks the rule p > 0"):
        cf.load_model(_write(tmp_path, "gg.json", d))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=8,
)


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:  # noqa: UP006
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def mutated(d: dict, data: st.DataObject, values: st.SearchStrategy = json_values) -> dict:
    """A copy of the model file ``d`` with one entry, anywhere in it, deleted or replaced by a drawn value
    (also used by test_issue13_cases for the other models)."""
    d = copy.deepcopy(d)
    path = data.draw(st.sampled_from([p for p in _paths(d) if p]))
    parent = d
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.sampled_from(["replace", "delete"])) == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(values)
    return d


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_are_refused_or_give_finite_predictions(tmp_path: Path, models, cdnow_cal, data) -> None:  # noqa: ANN001
    model = data.draw(st.sampled_from(models))
    d = mutated(model.to_dict(), data)
    file = tmp_path / "mutated.json"
    file.write_text(json.dumps(d), encoding="utf-8")
    try:
        loaded = cf.load_model(file)
    except cf.models.ModelFileError:
        return
    table = cdnow_cal.head(50)
    if isinstance(loaded, cf.GammaGamma):
        if loaded.params_["q"] > 1:
            assert np.all(np.isfinite(loaded.expected_spend(table)))
    else:
        assert np.all(np.isfinite(loaded.expected_purchases(table, 39)))
        assert np.all(np.isfinite(loaded.probability_alive(table)))
    _ = loaded.summary


def test_files_of_format_1_are_still_read(tmp_path: Path, models, cdnow_cal) -> None:  # noqa: ANN001
    bg, _ = models
    d = bg.to_dict()
    old = {k: v for k, v in d.items() if k not in ("log_covariance", "diagnostics")}
    old["format_version"] = 1
    loaded = cf.load_model(_write(tmp_path, "v1.json", old))
    np.testing.assert_allclose(loaded.summary["se"], bg.summary["se"], rtol=1e-12)
    assert loaded.diagnostics_["identified"]
    pd.testing.assert_series_equal(loaded.expected_purchases(cdnow_cal, 39), bg.expected_purchases(cdnow_cal, 39))
