"""Does a new batch of images look like the data the champion models were trained on?

A batch is reduced to one table row per image — pixel descriptors, a compact scattering embedding
and the champion models' predicted probabilities — so Evidently's column-wise drift tests apply,
and its report shows a reviewer which of those views moved. The dataset-level verdict is
Evidently's own (its `DriftedColumnsCount` test), not a rule re-implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

# Rec. 601 luma weights: the brightness a viewer perceives, not the plain channel average.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
CHANNELS = ("r", "g", "b")
RED_GREEN = np.array([1.0, -1.0, 0.0], dtype=np.float32)  # opponent colour axes (Hasler &
YELLOW_BLUE = np.array([0.5, 0.5, -1.0], dtype=np.float32)  # Süsstrunk 2003)
_CHUNK = 512  # images per float32 block: bounded memory for any data set size

_COUNT_METRIC = "evidently:metric_v2:DriftedColumnsCount"
_VALUE_METRIC = "evidently:metric_v2:ValueDrift"
_FAILED = "FAIL"
SCORE_COLUMNS = ["column", "method", "score", "threshold", "drifted"]


# --------------------------------------------------------------------------- descriptors


def image_descriptors(
    pixels: np.ndarray,
    widths: np.ndarray | None = None,
    heights: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row of cheap, interpretable statistics per uint8 N x 3 x S x S image.

    They name the usual ways a photo batch shifts (exposure, contrast, white balance, colour,
    focus, resolution), so a drifted column says what changed. Pixel values are scaled to [0, 1].
    Widths and heights are the original file sizes: the pixels are already resized.
    """
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"pixels must be N x 3 x S x S, got shape {pixels.shape}")
    starts = range(0, max(len(pixels), 1), _CHUNK)  # one empty block keeps the columns for N = 0
    blocks = [_descriptor_block(pixels[start : start + _CHUNK]) for start in starts]
    table = pd.concat(blocks, ignore_index=True)
    for name, sizes in (("width", widths), ("height", heights)):
        if sizes is not None:
            table[name] = _aligned(sizes, len(table), name)
    return table


def _descriptor_block(pixels: np.ndarray) -> pd.DataFrame:
    """All colour statistics from each image's channel means and 3 x 3 covariance.

    Brightness, channel and opponent-colour statistics are linear combinations of the channels,
    so their means and spreads follow from one batched matrix product instead of a pass each.
    """
    count, _, height, width = pixels.shape
    centred = pixels.reshape(count, 3, height * width).astype(np.float32)
    centred *= 1 / 255
    means = centred.mean(axis=2)
    centred -= means[..., None]  # centred before the product: E[x²] - E[x]² cancels badly
    covariance = centred @ centred.transpose(0, 2, 1) / (height * width)
    brightness, contrast = _moments(LUMA, means, covariance)
    columns = {"brightness": brightness, "contrast": contrast}
    for index, channel in enumerate(CHANNELS):
        columns[f"{channel}_mean"] = means[:, index]
        columns[f"{channel}_std"] = np.sqrt(covariance[:, index, index])
    columns["colourfulness"] = _colourfulness(means, covariance)
    columns["saturation"] = _saturation(pixels)
    # The Laplacian kernel sums to zero, so the centred luminance gives the same sharpness.
    luma = (LUMA @ centred).reshape(count, height, width)
    columns["sharpness"] = _laplacian(luma).var(axis=(1, 2))
    return pd.DataFrame({name: values.astype(np.float64) for name, values in columns.items()})


def _moments(
    weights: np.ndarray, means: np.ndarray, covariance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image mean and standard deviation of the channel combination `weights`."""
    variance = np.einsum("c,ncd,d->n", weights, covariance, weights)
    return means @ weights, np.sqrt(np.maximum(variance, 0))


def _colourfulness(means: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Hasler & Süsstrunk (2003): spread and offset of the opponent colour axes R-G and Y-B.

    Unlike saturation it also falls when the image darkens, which is what sets the two apart:
    saturation isolates a colour cast, colourfulness tracks vividness as seen.
    """
    rg_mean, rg_std = _moments(RED_GREEN, means, covariance)
    yb_mean, yb_std = _moments(YELLOW_BLUE, means, covariance)
    return np.hypot(rg_std, yb_std) + 0.3 * np.hypot(rg_mean, yb_mean)


def _saturation(pixels: np.ndarray) -> np.ndarray:
    """Mean HSV saturation, (max - min) / max per pixel; black pixels count as grey (0)."""
    high = pixels.max(axis=1)
    spread = (high - pixels.min(axis=1)).astype(np.float32)
    return (spread / np.maximum(high, 1)).mean(axis=(1, 2))


def _laplacian(luma: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian on interior pixels: its variance falls as an image blurs."""
    centre = luma[:, 1:-1, 1:-1]
    return (
        luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:] - 4 * centre
    )


def _aligned(values: np.ndarray, rows: int, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (rows,):
        raise ValueError(f"{name}: expected {rows} values, one per image, got shape {values.shape}")
    return values


# --------------------------------------------------------------------------- embedding


@dataclass(frozen=True)
class Embedding:
    """A PCA basis of pooled scattering coefficients, fitted on the reference batch only.

    Fitting on the reference alone means a new batch is expressed in the reference's own axes:
    if it were refitted on each batch, a shift would partly be absorbed into a new basis.
    """

    mean: np.ndarray  # per pooled coefficient, from the reference
    scale: np.ndarray  # per pooled coefficient, from the reference
    basis: np.ndarray  # components x pooled coefficients, orthonormal rows

    @property
    def columns(self) -> list[str]:
        return [f"emb_{index}" for index in range(len(self.basis))]

    def transform(self, coefficients: np.ndarray | torch.Tensor) -> pd.DataFrame:
        pooled = pool_coefficients(coefficients)
        if pooled.shape[1] != self.basis.shape[1]:
            raise ValueError(
                f"coefficients pool to {pooled.shape[1]} values per image; the embedding was "
                f"fitted on {self.basis.shape[1]} (same J, L and image size needed)"
            )
        standardised = (pooled - self.mean) / self.scale
        return pd.DataFrame(standardised @ self.basis.T, columns=self.columns)


def pool_coefficients(coefficients: np.ndarray | torch.Tensor) -> np.ndarray:
    """N x 3 x K x h x w → N x 3K spatial means: a position-free summary of texture energy."""
    if isinstance(coefficients, torch.Tensor):
        coefficients = coefficients.detach().cpu().numpy()
    values = np.asarray(coefficients, dtype=np.float64)
    if values.ndim < 3:
        raise ValueError(f"coefficients must be N x … x h x w, got shape {values.shape}")
    return values.mean(axis=(-2, -1)).reshape(len(values), -1)


def fit_embedding(
    reference_coefficients: np.ndarray | torch.Tensor, components: int = 8
) -> Embedding:
    """Principal axes of the standardised pooled reference coefficients.

    Raw scattering coefficients span orders of magnitude across paths, so without
    standardisation the first components would only restate the order-0 paths (mean colour),
    which the descriptors already cover. Signs are fixed (largest loading positive) so the same
    reference always yields the same columns.
    """
    pooled = pool_coefficients(reference_coefficients)
    if not 1 <= components <= min(pooled.shape):
        raise ValueError(
            f"components must be in [1, {min(pooled.shape)}] for {pooled.shape[0]} reference "
            f"images of {pooled.shape[1]} pooled coefficients, got {components}"
        )
    mean = pooled.mean(axis=0)
    scale = pooled.std(axis=0)
    scale[scale == 0] = 1.0  # a constant path carries no information, and must not divide by 0
    _, _, axes = np.linalg.svd((pooled - mean) / scale, full_matrices=False)
    basis = axes[:components]
    largest = np.abs(basis).argmax(axis=1)
    basis = basis * np.sign(basis[np.arange(components), largest])[:, None]
    return Embedding(mean=mean, scale=scale, basis=basis)


# --------------------------------------------------------------------------- predictions


def prediction_columns(probabilities: dict[str, np.ndarray]) -> pd.DataFrame:
    """`{"cnn": p}` → column `cnn_probability`: a shift here is what users would actually see."""
    columns = {}
    for model, values in probabilities.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"{model}: expected one probability per image, got {values.shape}")
        columns[f"{model}_probability"] = values
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- drift


@dataclass
class DriftResult:
    """Evidently's verdict in plain types, so callers log it without knowing Evidently."""

    drifted: bool
    drift_share: float  # share of the compared columns that drifted
    drifted_columns: list[str]
    column_scores: pd.DataFrame  # SCORE_COLUMNS, one row per compared column
    html: str  # Evidently's self-contained report
    summary: dict  # JSON-serialisable, for the run record


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    drift_share_threshold: float = 0.5,
    stattest_threshold: float | None = None,
    method: str | None = "ks",
) -> DriftResult:
    """Evidently's DataDriftPreset over the numeric columns both frames share.

    The batch counts as drifted when Evidently's `DriftedColumnsCount` test fails, i.e. when the
    share of drifted columns reaches `drift_share_threshold`.

    `method` defaults to the two-sample Kolmogorov–Smirnov test instead of Evidently's automatic
    choice: above 1000 reference rows Evidently switches to a normed Wasserstein distance with a
    fixed 0.1 threshold, which ignores the sample size and flags most columns of any batch of
    a few dozen images drawn from the reference distribution itself. The K-S p-value accounts
    for both sizes. `None` restores the automatic choice; `stattest_threshold` then means a
    p-value or a distance depending on the test picked per column.
    """
    columns = _shared_numeric_columns(reference, current)
    report, html, version = _evidently_report(
        reference[columns],
        current[columns],
        drift_share=drift_share_threshold,
        method=method,
        threshold=stattest_threshold,
    )
    summary = {
        "reference_rows": len(reference),
        "current_rows": len(current),
        "drift_share_threshold": float(drift_share_threshold),
        "evidently_version": version,
    }
    return _result(report, html, summary)


def _evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, **preset: object
) -> tuple[dict, str, str]:
    """Run the preset; return Evidently's result dict, its HTML and its version.

    Evidently is imported here rather than with the module: the import takes seconds, and most
    scheduled runs find no new batch and never compare anything. Its telemetry opt-out
    (`DO_NOT_TRACK`) is set by every entry point (`glasses.entrypoint`), not here.
    """
    from evidently import DataDefinition, Dataset, Report, __version__
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(reference.columns))
    current_data, reference_data = (
        Dataset.from_pandas(frame.reset_index(drop=True), data_definition=definition)
        for frame in (current, reference)
    )
    with np.errstate(divide="ignore", invalid="ignore"):  # constant columns, e.g. one image size
        snapshot = Report([DataDriftPreset(**preset)], include_tests=True).run(
            current_data, reference_data
        )
        html = snapshot.get_html_str(as_iframe=False)
    return snapshot.dict(), html, __version__


def _shared_numeric_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    for name, frame in (("reference", reference), ("current", current)):
        if frame.empty:
            rows, width = frame.shape
            raise ValueError(f"drift: the {name} frame is empty ({rows} rows, {width} columns)")
    columns = [
        column
        for column in reference.columns
        if column in current.columns and _numeric(reference[column]) and _numeric(current[column])
    ]
    if not columns:
        raise ValueError(
            "drift: reference and current share no numeric column "
            f"(reference: {list(reference.columns)}, current: {list(current.columns)})"
        )
    return columns


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _result(report: dict, html: str, summary: dict) -> DriftResult:
    """Read the verdicts from Evidently's own tests: a failed test means drifted."""
    failed = {
        test["metric_config"]["metric_id"] for test in report["tests"] if test["status"] == _FAILED
    }
    count = _only(report, _COUNT_METRIC)
    scores = pd.DataFrame(
        [
            {
                "column": metric["config"]["column"],
                "method": metric["config"]["method"],
                "score": float(metric["value"]),
                "threshold": float(metric["config"]["threshold"]),
                "drifted": metric["id"] in failed,
            }
            for metric in report["metrics"]
            if metric["config"]["type"] == _VALUE_METRIC
        ],
        columns=SCORE_COLUMNS,
    )
    drifted = count["id"] in failed
    share = float(count["value"]["share"])
    drifted_columns = scores.loc[scores["drifted"], "column"].tolist()
    summary = {
        "drifted": drifted,
        "drift_share": share,
        "drifted_count": int(count["value"]["count"]),
        "column_count": len(scores),
        "drifted_columns": drifted_columns,
        "columns": scores.to_dict(orient="records"),
        **summary,
    }
    return DriftResult(drifted, share, drifted_columns, scores, html, summary)


def _only(report: dict, metric_type: str) -> dict:
    matches = [metric for metric in report["metrics"] if metric["config"]["type"] == metric_type]
    if len(matches) != 1:
        raise RuntimeError(f"Evidently report holds {len(matches)} {metric_type} results, not 1")
    return matches[0]
