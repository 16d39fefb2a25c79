"""Text → category classifier (models/textclass.py), on real Chinese complaint text."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold, cross_val_score, cross_validate

from models.textclass import TextCategoryClassifier, normalise_text
from pipelines.redact import redact

SAMPLE = "cn_gov_message_board_teddycup2020_sample.parquet"


@pytest.fixture(scope="module")
def labelled(shared_data) -> pd.DataFrame:
    df = pd.read_parquet(shared_data / SAMPLE)
    df = df[(df["table"] == "attachment2_labelled") & df["一级分类"].notna()]
    text = df["留言主题"].fillna("") + "\n" + df["留言详情"].fillna("")
    return pd.DataFrame({"text": redact(text).text, "label": df["一级分类"].astype(str)})


def test_real_sample_shape(labelled):
    assert len(labelled) == 495
    assert labelled["label"].nunique() == 7


def test_cross_validated_accuracy_is_clearly_above_the_majority_baseline(labelled):
    X, y = labelled["text"].to_numpy(), labelled["label"].to_numpy()
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    majority = cross_val_score(DummyClassifier(strategy="most_frequent"), X, y, cv=cv).mean()
    scores = cross_validate(TextCategoryClassifier(), X, y, cv=cv, scoring=["accuracy", "f1_macro"])
    model, macro_f1 = scores["test_accuracy"].mean(), scores["test_f1_macro"].mean()
    assert majority < 0.25
    assert model > majority + 0.4, (model, majority)  # bench: ≈ 0.80 vs 0.21
    assert macro_f1 > 0.65, macro_f1


def test_predict_with_confidence_on_real_text(labelled):
    train, test = labelled.iloc[::2], labelled.iloc[1::2]
    model = TextCategoryClassifier().fit(train["text"], train["label"])
    out = model.predict_with_confidence(test["text"])
    assert list(out.columns) == ["label", "confidence"]
    assert out.index.equals(test.index)
    assert out["confidence"].between(0.0, 1.0).all()
    assert set(out["label"]) <= set(model.classes_)
    assert (out["label"].to_numpy() == model.predict(test["text"])).all()
    proba = model.predict_proba(test["text"])
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.allclose(out["confidence"].to_numpy(), proba.max(axis=1))
    # a confident prediction is more often right than an unsure one
    right = out["label"].to_numpy() == test["label"].to_numpy()
    sure = out["confidence"].to_numpy() >= np.median(out["confidence"])
    assert right[sure].mean() > right[~sure].mean()


TOY_X = [
    "小区物业乱收停车费", "物业不作为，电梯坏了没人修", "物业公司强行收费", "物业管理混乱，垃圾没人清",
    "老板拖欠农民工工资", "工地欠薪三个月", "公司不发工资还开除工人", "讨要工资被打",
    "邻居装修噪音扰民", "楼上邻居漏水不处理", "邻居占用楼道堆放杂物", "与邻居因排水沟发生口角",
]
TOY_Y = ["MD15"] * 4 + ["MD1001"] * 4 + ["MD02"] * 4


@pytest.mark.parametrize("params", [{}, {"model": "logreg"}, {"ngram_range": (2, 4)}, {"calibration": "sigmoid"}])
def test_toy_fit_predict(params):
    model = TextCategoryClassifier(**params).fit(TOY_X, TOY_Y)
    assert list(model.classes_) == sorted(set(TOY_Y))
    out = model.predict_with_confidence(["物业乱收费", "拖欠工资"])
    assert list(out.index) == [0, 1]
    assert out["confidence"].between(0, 1).all()
    assert model.predict(["物业公司乱收费"])[0] == "MD15"


def test_estimator_conventions():
    model = TextCategoryClassifier(C=3.0, random_state=7)
    assert model.get_params()["C"] == 3.0
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(model, "classes_")
    with pytest.raises(NotFittedError):
        model.predict(["物业"])
    fitted = model.fit(TOY_X, TOY_Y)
    assert fitted is model and hasattr(model, "vectorizer_") and hasattr(model, "classifier_")


def test_deterministic_for_a_given_random_state():
    a = TextCategoryClassifier(random_state=1).fit(TOY_X, TOY_Y).predict_proba(TOY_X)
    b = TextCategoryClassifier(random_state=1).fit(TOY_X, TOY_Y).predict_proba(TOY_X)
    assert np.array_equal(a, b)


def test_inputs_are_validated_and_missing_text_is_tolerated():
    model = TextCategoryClassifier().fit(pd.Series(TOY_X), pd.Series(TOY_Y))
    out = model.predict_with_confidence(pd.Series(["物业", None, np.nan], index=["a", "b", "c"]))
    assert list(out.index) == ["a", "b", "c"]
    with pytest.raises(TypeError):
        model.predict("物业乱收费")  # a single string is not a list of texts
    with pytest.raises(ValueError):
        TextCategoryClassifier().fit(TOY_X, TOY_Y[:-1])
    with pytest.raises(ValueError):
        TextCategoryClassifier().fit(TOY_X[:2], ["a", "a"])
    with pytest.raises(ValueError):
        TextCategoryClassifier(model="forest").fit(TOY_X, TOY_Y)  # type: ignore[arg-type]


def test_min_df_falls_back_on_a_tiny_vocabulary():
    texts, labels = ["甲乙", "丙丁", "戊己", "庚辛"], ["a", "b", "a", "b"]
    model = TextCategoryClassifier(analyzer="char", calibration_cv=2).fit(texts, labels)
    assert model.min_df_ == 1


def test_normalise_text():
    assert normalise_text("ＡＢＣ１２３_x000D_物业\n\n  收费") == "abc123 物业 收费"
    assert normalise_text(None) == "" and normalise_text(float("nan")) == ""
