"""Benchmark: text → category on real Chinese government message-board complaints.

Data: ``cn_gov_message_board_teddycup2020_sample.parquet`` (../shared/data), table 附件2: 495 messages
labelled with one of 7 first-level classes (一级分类). Text = 留言主题 + 留言详情, redacted with
:func:`pipelines.redact.redact` first (the analytics store only ever holds redacted text).

Every model is scored on the same stratified 5-fold split (accuracy and macro-F1, mean ± sd over folds):

* majority-class baseline (``DummyClassifier``);
* word-free bag-of-characters multinomial Naive Bayes (single characters, no n-grams);
* :class:`models.textclass.TextCategoryClassifier` with its defaults (calibrated LinearSVC), the same on
  unredacted text (cost of redaction), the logistic-regression variant, and a nested-CV run in which
  ``model``/``C`` are chosen by an inner 3-fold search on each training fold only (the honest figure:
  the defaults were picked after looking at this sample).

Then, for the default model, per-class F1 and how far its confidence can be trusted (out-of-fold).

Run:  .venv/bin/python bench/textclass.py [--data PATH] [--folds 5] [--seed 0] [--results bench/RESULTS_textclass.md]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from models.textclass import TextCategoryClassifier, normalise_text
from pipelines.redact import redact

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("ONEMAP_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "cn_gov_message_board_teddycup2020_sample.parquet"
)


def load_labelled(path: Path) -> pd.DataFrame:
    """The 495 labelled rows (附件2) with ``text`` = 主题 + 详情 and ``label`` = 一级分类."""
    df = pd.read_parquet(path)
    df = df[(df["table"] == "attachment2_labelled") & df["一级分类"].notna()]
    text = df["留言主题"].fillna("").astype(str) + "\n" + df["留言详情"].fillna("").astype(str)
    return pd.DataFrame({"text": text.to_numpy(), "label": df["一级分类"].astype(str).to_numpy()})


DEFAULT_NAME = "TextCategoryClassifier() — char_wb 1-3 TF-IDF + calibrated LinearSVC"


def models() -> dict[str, object]:
    nested = GridSearchCV(
        TextCategoryClassifier(),
        {"model": ["linearsvc", "logreg"], "C": [0.3, 1.0, 10.0]},
        scoring="f1_macro",
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    return {
        "majority class (baseline)": DummyClassifier(strategy="most_frequent"),
        "bag-of-chars Naive Bayes (baseline)": make_pipeline(
            CountVectorizer(analyzer="char", ngram_range=(1, 1), preprocessor=normalise_text), MultinomialNB()
        ),
        DEFAULT_NAME: TextCategoryClassifier(),
        "TextCategoryClassifier(), unredacted text": TextCategoryClassifier(),
        "TextCategoryClassifier(model='logreg', C=10)": TextCategoryClassifier(model="logreg", C=10.0),
        "TextCategoryClassifier, model/C by nested 3-fold CV": nested,
    }


def evaluate(texts: dict[str, np.ndarray], y: np.ndarray, folds: int, seed: int):
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    splits = list(cv.split(texts["redacted"], y))
    rows = []
    oof_proba = None
    classes = np.unique(y)
    for name, est in models().items():
        X = texts["raw"] if "unredacted" in name else texts["redacted"]
        acc, f1, secs = [], [], []
        proba = np.zeros((len(y), len(classes))) if name == DEFAULT_NAME else None
        for train, test in splits:
            model = clone(est)
            t0 = time.perf_counter()
            model.fit(X[train], y[train])
            pred = model.predict(X[test])
            secs.append(time.perf_counter() - t0)
            acc.append(accuracy_score(y[test], pred))
            f1.append(f1_score(y[test], pred, average="macro"))
            if proba is not None:
                proba[test] = model.predict_proba(X[test])
        if proba is not None:
            oof_proba = proba
        rows.append(
            {
                "model": name,
                "accuracy": np.mean(acc),
                "accuracy_sd": np.std(acc),
                "macro_f1": np.mean(f1),
                "macro_f1_sd": np.std(f1),
                "fit_predict_s": np.mean(secs),
            }
        )
        print(f"  {name}: accuracy {np.mean(acc):.3f} ± {np.std(acc):.3f}, macro-F1 {np.mean(f1):.3f}", file=sys.stderr)
    return pd.DataFrame(rows), classes, oof_proba


def confidence_table(y: np.ndarray, classes: np.ndarray, proba: np.ndarray) -> tuple[pd.DataFrame, float]:
    pred = classes[proba.argmax(axis=1)]
    conf = proba.max(axis=1)
    correct = pred == y
    rows = []
    for thr in (0.0, 0.5, 0.6, 0.7, 0.8, 0.9):
        keep = conf >= thr
        rows.append(
            {
                "confidence ≥": f"{thr:.1f}",
                "coverage": keep.mean(),
                "accuracy on kept": correct[keep].mean() if keep.any() else float("nan"),
            }
        )
    edges = np.linspace(0, 1, 11)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        b = (conf > lo) & (conf <= hi)
        if b.any():
            ece += b.mean() * abs(correct[b].mean() - conf[b].mean())
    return pd.DataFrame(rows), ece


def per_class(y: np.ndarray, classes: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    pred = classes[proba.argmax(axis=1)]
    f1 = f1_score(y, pred, labels=classes, average=None)
    return pd.DataFrame(
        {"class": classes, "n": [(y == c).sum() for c in classes], "F1 (out-of-fold)": f1}
    ).sort_values("n", ascending=False)


def _md(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float | np.floating) else str(v) for v in r]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, help="also write the report (markdown) to this file")
    args = ap.parse_args(argv)

    if not args.data.is_file():
        print(f"data not found: {args.data} (set --data or ONEMAP_SHARED_DATA)", file=sys.stderr)
        return 2
    df = load_labelled(args.data)
    y = df["label"].to_numpy()
    t0 = time.perf_counter()
    red = redact(df["text"])
    redact_s = time.perf_counter() - t0
    texts = {"raw": df["text"].to_numpy(), "redacted": red.text.to_numpy()}
    print(f"{len(df)} labelled texts, {len(np.unique(y))} classes; redaction {redact_s:.2f} s", file=sys.stderr)

    table, classes, oof = evaluate(texts, y, args.folds, args.seed)
    conf, ece = confidence_table(y, classes, oof)
    pc = per_class(y, classes, oof)
    majority = table.iloc[0]

    digest = hashlib.sha256(args.data.read_bytes()).hexdigest()[:12]
    cmd = "bench/textclass.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    counts = ", ".join(f"{k} {v}" for k, v in red.counts.items())
    report = f"""# Text classifier benchmark: 泰迪杯 2020 government message board sample

Command: `.venv/bin/python {cmd.strip()}`

- Data: `{args.data.name}` (sha256 {digest}…), table 附件2, {len(df)} labelled messages, {len(classes)} classes
  (一级分类); text = 留言主题 + 留言详情, redacted first ({counts}).
- Split: stratified {args.folds}-fold, shuffled, seed {args.seed}; the same folds for every model. Mean ± sd over folds.
- scikit-learn {sklearn.__version__}, pandas {pd.__version__}; 1 process.

## Accuracy and macro-F1

{_md(table.assign(fit_predict_s=table["fit_predict_s"].map(lambda v: f"{v:.2f}")))}

Majority baseline: accuracy {majority.accuracy:.3f}. `fit_predict_s` = seconds per fold (fit on ~{len(df) * (args.folds - 1) // args.folds}, predict ~{len(df) // args.folds}).

## Default model, out-of-fold: per class

{_md(pc)}

## Default model, out-of-fold: can the confidence be trusted?

{_md(conf)}

Expected calibration error (10 bins): {ece:.3f}.

## Notes

- The defaults (calibrated LinearSVC, C=1, min_df=2, char_wb 1-3) were chosen after trying about a dozen
  settings on these same folds, so their row is slightly optimistic; the nested-CV row picks `model`/`C`
  inside each training fold only and is the unbiased figure.
- 495 texts are few: one fold holds ~99 messages, so ±0.02–0.03 between rows is within noise.
- Timings are wall-clock on a shared 2-CPU machine and vary with its load; compare rows, not runs.
- The classes are the message board's 一级分类 (城乡建设, 劳动和社会保障 …), not our MD/grid codes: this
  measures the method on real Chinese complaint text; a deployment retrains on its own labelled records.
"""
    print(report)
    if args.results:
        args.results.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
