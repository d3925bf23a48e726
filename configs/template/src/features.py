"""Feature engineering: the one file an agent edits freely.

`build_features(frame)` receives the feature columns as a pandas DataFrame (never the label, the
time column, PII columns or, unless an approved override allows them, protected attributes; a
dry run of run_experiment lists them as feature_columns) and returns a DataFrame of numeric or
categorical columns. Written `build_features(frame, context)`, it also gets `context`: the
standards' time column for the same rows, to measure from each row's own time (an account's age
at application); the time column is never a feature itself. It runs inside the training sandbox, separately on training and evaluation
rows: anything it learns must be fitted on training rows by the training code, never here. Its
SHA-256 is logged as part of feature_pipeline_hash.
"""

import pandas as pd


def build_features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.copy()
