"""The training child: the code that runs INSIDE the sandbox, as `python -m training --run-dir DIR
--stage features|fit`, each stage in a sandbox of its own, one after the other.

It is the untrusted side of run_experiment. The features stage (training/features_stage.py) imports
the workspace's agent-edited features.py and writes build_features' output to built/; the fit stage
(training/runner.py), which never imports features.py, reads built/ as data, trains one model and
predicts scores for evaluation rows whose labels it never sees. The server
(server/sandbox.py launches it) owns the split and computes every metric from the predictions.
This is the only package that imports xgboost or torch; training.spec and training.contract
import only pydantic, so the server may use them to validate specs and read results.

Run-directory contract (the server writes inputs/, the features stage built/, the fit stage outputs/)
----------------------------------------------------------------------------------------------------
<run>/inputs/            mounted read-only in the sandbox (at /sandbox/inputs)
    spec.json            {"model": {"type": "xgboost" | "torch_mlp" | "logistic_regression" |
                         "random_forest", "params": {...}}, "seed": int, "feature_columns": [...],
                         "context_columns": [...] (optional: `context` of a build_features(frame, context)),
                         "categorical_columns": [...], "device": "auto" | "cpu" | "cuda",
                         "task": "fit_predict" | "score", "max_categories": int (optional, default 50)}
                         validated by training.spec.RunSpec; unknown keys or hyperparameters are errors.
                         No baseline is ever fitted by the child: its output is judged against the
                         baseline, so the server fits its baselines itself (tools/baseline.py).
    train.parquet        feature and context columns + "__row_id__" (int) + "__label__" (0/1 int)
    eval.parquet         feature and context columns + "__row_id__", and NO "__label__" (the child refuses one)
    features.py          copy of the workspace src/features.py: build_features(frame) -> DataFrame, or
                         build_features(frame, context) -> DataFrame (context: the context columns)
    model/               task "score" only, with no train.parquet: a trained model's model/ directory
                         (below); its feature transform and model score eval.parquet, nothing is
                         fitted (training/scoring.py; the server scores the champion on a candidate's
                         test rows this way)
<run>/built/             the features stage's only writable mount (at /sandbox/built; read-only in the
                         fit stage); must be empty at launch
    train.parquet        build_features' output for the training rows (fit_predict only), row for row
    eval.parquet         and for the evaluation rows; the fit stage checks both again (rows, names)
    result.json          only when the features stage fails: an ErrorResult as below
<run>/outputs/           the fit stage's only writable mount (at /sandbox/outputs); must be empty at launch
    predictions.parquet  "__row_id__" (int64), "score" (float64, P(label = 1)), one row per eval row
                         in eval.parquet order
    model/               feature_transform.json (columns, medians, means/stds, category lists) and
                           xgboost:              model.json (Booster.save_model, JSON)
                           torch_mlp:            model.pt (state_dict, CPU tensors) + architecture.json
                           logistic_regression:  model.json (coef, intercept over the transformed features)
                           random_forest:        model.skops (skops.io; load with trusted types only)
    progress.jsonl       one training.contract.ProgressEvent per line, flushed per line:
                         {"step": i, "metrics": {"train_loss": x}}
                         torch: one per epoch; xgboost: one per tenth of the rounds; sklearn: one
                         (training.spec.progress_total). The server words every message itself and
                         passes on only steps 1..total in order and allowlisted, rounded metrics.
    result.json          training.contract.SuccessResult: {"status": "ok", "train_seconds",
                         "predict_seconds", "inference_latency_ms_per_row", "wall_seconds", "device",
                         "gpu_name", "peak_gpu_memory_bytes" (torch on CUDA), "batch_size" (torch:
                         rows per micro-batch used; "auto" resolves per device, training.spec),
                         "effective_batch_size" (torch: batch_size x grad_accum_steps, asserted
                         per optimizer step),
                         "library_versions", "n_features", "feature_names", "n_train_rows",
                         "n_eval_rows", "details": {"model_format", "threads", ...}}
                         or on failure training.contract.ErrorResult {"status": "error",
                         "error_type", "phase", "code", "features_line", "message"} with exit
                         status 1. error_type is the exception type, or MemoryError /
                         FileSizeLimitError / ProcessLimitError when a sandbox limit was hit; phase
                         and code come from fixed lists. The server words the agent's message from
                         these checked fields only (server/sandbox_vocabulary.py); message, the
                         child's own text, goes to logs/child_report.json for the operator.
<run>/logs/              written by the launcher on the host: child.stdout, child.stderr, and
                         child_report.json (the child's own account of a failure, operator only)
<run>/scratch/STAGE/     HOME and TMPDIR of each stage in unconfined mode (in bwrap: a private /tmp)

Everything under built/ is untrusted: a hostile features.py can write any of it. outputs/ is
written by the fit stage, which features.py cannot reach, but the server reads it as untrusted all
the same (the fit stage runs on what built/ holds). The server
reads it only through server.sandbox_io (no symlinks, FIFOs or hard links) and validates it with
training.contract; it must never load pickles from it.

What the child does: (features stage) import features.py by file path; build_features on training
and evaluation rows separately; (fit stage) fit the feature transform on training rows only (median imputation and
standardisation of numbers; one-hot categories learned on training rows, missing values as their
own category, unseen categories as all zeros); train; predict; write outputs. Seeds (random,
numpy, torch incl. CUDA) and deterministic switches make the same inputs + seed give identical
predictions; thread counts come from OMP_NUM_THREADS, set by the launcher.
"""
