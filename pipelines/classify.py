"""Categories for records that arrive with free text and no code (e.g. 12345 work orders).

The deployment's own loaded records (category mapped from a code, with redacted text) train a
``models.textclass.TextCategoryClassifier`` on the product category codes; its label and confidence are kept
(``category_method = 'model'``, ``category_confidence``). Too little training data, or a confidence
below the profile's threshold, quarantines the row as ``unclassified`` instead of guessing.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

UNCLASSIFIED = "unclassified"
MIN_TRAINING_ROWS = 200
MIN_CONFIDENCE = 0.35
MAX_TRAINING_ROWS = 30_000


def training_frame(con) -> pd.DataFrame:
    return con.execute(
        "SELECT summary_redacted AS text, category_code FROM core.events "
        "WHERE category_method = 'map' AND summary_redacted IS NOT NULL AND length(summary_redacted) > 4 "
        f"USING SAMPLE reservoir({int(MAX_TRAINING_ROWS)} ROWS) REPEATABLE (7)").df()  # a constant: DuckDB wants one


def classify_pending(con, events: pd.DataFrame, batch_meta: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fill category_code/confidence of rows with category_method 'model'; returns (events, new rejects)."""
    pending = (events["category_method"] == "model").to_numpy()
    if not pending.any():
        return events, pd.DataFrame()
    train = training_frame(con)
    labels = train["category_code"] if len(train) else pd.Series(dtype=str)
    reason = None
    if len(train) < MIN_TRAINING_ROWS or labels.nunique() < 2:
        reason = (f"no category code, and only {len(train)} labelled records to train the text model on "
                  f"(needs {MIN_TRAINING_ROWS}+ in 2+ categories)")
        ok = np.zeros(pending.sum(), dtype=bool)
    else:
        from models.textclass import TextCategoryClassifier

        model = TextCategoryClassifier(random_state=0).fit(train["text"], labels)
        pred = model.predict_with_confidence(events.loc[pending, "summary_redacted"].fillna(""))
        ok = (pred["confidence"] >= MIN_CONFIDENCE).to_numpy()
        idx = events.index[pending][ok]
        events.loc[idx, "category_code"] = pred["label"].to_numpy()[ok]
        events.loc[idx, "category_confidence"] = pred["confidence"].to_numpy()[ok]
        reason = f"text model confidence below {MIN_CONFIDENCE}"
    bad = events.index[pending][~ok]
    rejects = pd.DataFrame({
        **{k: v for k, v in batch_meta.items()},
        "source_row": events.loc[bad, "source_row"].astype("int64").to_numpy(), "field": "category",
        "reason": UNCLASSIFIED, "detail": reason,
        "raw": [json.dumps({"summary_redacted": t}, ensure_ascii=False) for t in events.loc[bad, "summary_redacted"]],
    })
    from pipelines.stage import HASHED_FIELDS, _content_hash

    events = events.drop(index=bad).reset_index(drop=True)
    events["content_hash"] = _content_hash(events, HASHED_FIELDS)  # the category is part of the digest
    return events, rejects
