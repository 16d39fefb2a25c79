"""Category from free text, for records that carry no usable source code.

:class:`TextCategoryClassifier` is TF-IDF over character n-grams (``analyzer="char_wb"``: Chinese needs no
word segmenter, and character n-grams are robust to the typos and mixed scripts of grid-worker notes)
followed by a linear model: by default a LinearSVC whose scores are turned into probabilities by
temperature scaling on internal folds (``CalibratedClassifierCV``), or multinomial logistic regression
(``model="logreg"``). Every prediction comes with its confidence (the largest class probability) so the
mapping step can keep it (``category_method="model"``, ``category_confidence``) and send low-confidence
records to manual review instead of trusting them.

Why these defaults (bench/RESULTS_textclass.md, 泰迪杯 2020 sample, 7 classes, 5-fold CV): the
calibrated LinearSVC is as accurate as logistic regression or better, several times faster to fit, and
its confidence is honest (expected calibration error ≈ 0.06, against ≈ 0.3 for a class-balanced
logistic regression whose probabilities are spread too thin). ``min_df=2`` drops n-grams seen in one
document only; on a tiny training set where nothing would remain it falls back to 1.

It is a scikit-learn estimator (parameters in ``__init__``, learned attributes end in ``_``), so it works
with ``cross_validate``, ``GridSearchCV`` and ``clone``. Train it on *redacted* text
(:func:`pipelines.redact.redact`): that is what the analytics store holds at prediction time.

Evaluation on real Chinese complaint text: ``bench/textclass.py`` (results in bench/RESULTS_textclass.md).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

__all__ = ["TextCategoryClassifier", "normalise_text"]

_EXCEL_CR = re.compile(r"_x000[dDaA]_")  # carriage returns / line feeds escaped by Excel exports
_SPACES = re.compile(r"\s+")


def normalise_text(value: object) -> str:
    """Text as the classifier sees it: NFKC (full-width → half-width), lower case, Excel ``_x000D_``
    escapes and runs of whitespace collapsed to one space. Missing values become ``""``."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return ""
    s = unicodedata.normalize("NFKC", value if isinstance(value, str) else str(value))
    s = _EXCEL_CR.sub(" ", s)
    return _SPACES.sub(" ", s).strip().lower()


def _texts(X: Iterable[object] | pd.Series | str) -> list[str]:
    if isinstance(X, str):
        raise TypeError("expected an iterable of texts, got a single string; wrap it in a list")
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(f"expected one text column, got a DataFrame with {X.shape[1]} columns")
        X = X.iloc[:, 0]
    return [normalise_text(v) for v in X]


class TextCategoryClassifier(ClassifierMixin, BaseEstimator):
    """Character n-gram TF-IDF + linear classifier, with a confidence for every prediction.

    Parameters
    ----------
    ngram_range : (int, int)
        Character n-gram lengths; ``(1, 3)`` (default) or ``(2, 4)`` both work for Chinese.
    analyzer : {"char_wb", "char"}
        ``char_wb`` keeps n-grams inside whitespace-separated tokens.
    min_df, max_df, max_features, sublinear_tf :
        Passed to :class:`~sklearn.feature_extraction.text.TfidfVectorizer`.
    model : {"logreg", "linearsvc"}
        A LinearSVC calibrated over ``calibration_cv`` internal folds (default), or logistic
        regression (probabilities are native).
    C : float
        Inverse regularisation strength of the linear model.
    class_weight : "balanced" or None
        ``"balanced"`` keeps rare categories from being swamped by 城乡建设-sized ones.
    max_iter : int
    calibration : {"temperature", "sigmoid", "isotonic"}
        How LinearSVC scores become probabilities (``model="linearsvc"`` only).
    calibration_cv : int
        Folds for the LinearSVC calibration (lowered automatically to the smallest class size).
    random_state : int or None
        Seeds the linear model (LinearSVC's dual coordinate descent; LogisticRegression with lbfgs is
        deterministic anyway) and the calibration folds.

    Attributes
    ----------
    vectorizer_ : TfidfVectorizer
    min_df_ : the ``min_df`` actually used (1 if ``min_df`` left no vocabulary)
    classifier_ : LogisticRegression or CalibratedClassifierCV
    classes_ : ndarray of the labels seen in ``fit``
    """

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 3),
        analyzer: Literal["char_wb", "char"] = "char_wb",
        min_df: int | float = 2,
        max_df: float = 1.0,
        max_features: int | None = 300_000,
        sublinear_tf: bool = True,
        model: Literal["linearsvc", "logreg"] = "linearsvc",
        C: float = 1.0,
        class_weight: Literal["balanced"] | None = "balanced",
        max_iter: int = 5000,
        calibration: Literal["temperature", "sigmoid", "isotonic"] = "temperature",
        calibration_cv: int = 3,
        random_state: int | None = 0,
    ) -> None:
        self.ngram_range = ngram_range
        self.analyzer = analyzer
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.model = model
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.calibration = calibration
        self.calibration_cv = calibration_cv
        self.random_state = random_state

    def _make_vectorizer(self, min_df: int | float) -> TfidfVectorizer:
        return TfidfVectorizer(
            analyzer=self.analyzer,
            ngram_range=tuple(self.ngram_range),
            min_df=min_df,
            max_df=self.max_df,
            max_features=self.max_features,
            sublinear_tf=self.sublinear_tf,
            dtype=np.float32,
        )

    def _make_classifier(self, y: np.ndarray):
        if self.model == "logreg":
            return LogisticRegression(
                C=self.C, class_weight=self.class_weight, max_iter=self.max_iter, random_state=self.random_state
            )
        if self.model == "linearsvc":
            svc = LinearSVC(
                C=self.C, class_weight=self.class_weight, max_iter=self.max_iter, random_state=self.random_state
            )
            _, counts = np.unique(y, return_counts=True)
            cv = int(min(self.calibration_cv, counts.min()))
            if cv < 2:
                raise ValueError("model='linearsvc' needs at least 2 examples of every class for calibration")
            folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=self.random_state)
            return CalibratedClassifierCV(svc, method=self.calibration, cv=folds)
        raise ValueError(f"model must be 'logreg' or 'linearsvc', got {self.model!r}")

    def fit(self, X: Iterable[object], y: Iterable[object]) -> TextCategoryClassifier:
        """Fit on texts ``X`` and labels ``y`` (category codes or any hashable labels)."""
        texts = _texts(X)
        labels = y.to_numpy() if isinstance(y, pd.Series) else np.asarray(y if isinstance(y, np.ndarray) else list(y))
        if len(texts) != len(labels):
            raise ValueError(f"X has {len(texts)} texts but y has {len(labels)} labels")
        if pd.isna(labels).any():
            raise ValueError("y contains missing labels; drop unlabelled rows before fitting")
        if len(np.unique(labels)) < 2:
            raise ValueError("need at least two distinct labels to fit a classifier")
        self.min_df_ = self.min_df
        try:
            self.vectorizer_ = self._make_vectorizer(self.min_df)
            features = self.vectorizer_.fit_transform(texts)
        except ValueError:  # "After pruning, no terms remain": a handful of short texts
            if self.min_df == 1:
                raise
            self.min_df_ = 1
            self.vectorizer_ = self._make_vectorizer(1)
            features = self.vectorizer_.fit_transform(texts)
        self.classifier_ = self._make_classifier(labels).fit(features, labels)
        self.classes_ = self.classifier_.classes_
        return self

    def _features(self, X: Iterable[object]):
        check_is_fitted(self, ("vectorizer_", "classifier_"))
        return self.vectorizer_.transform(_texts(X))

    def predict_proba(self, X: Iterable[object]) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        features = self._features(X)
        return self.classifier_.predict_proba(features)

    def predict(self, X: Iterable[object]) -> np.ndarray:
        """Most probable label for each text."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_with_confidence(self, X: Iterable[object]) -> pd.DataFrame:
        """DataFrame with ``label`` (most probable class) and ``confidence`` (its probability, in [0, 1]).

        The index is the input's index when ``X`` is a Series, else 0..n-1.
        """
        proba = self.predict_proba(X)
        best = np.argmax(proba, axis=1)
        index = X.index if isinstance(X, pd.Series | pd.DataFrame) else None
        return pd.DataFrame(
            {
                "label": pd.Series(self.classes_[best], dtype=object).to_numpy(),
                "confidence": np.clip(proba[np.arange(len(best)), best], 0.0, 1.0).astype(float),
            },
            index=index,
        )
