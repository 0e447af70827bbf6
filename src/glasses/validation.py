"""Data-quality gate for the image manifest, expressed as a Great Expectations suite.

The checks live in GX rather than in plain asserts so that every run leaves a standard, reviewable
artefact (the JSON validation result and its Data Docs page) next to the models it fed, and so that
a bad dataset stops the pipeline with a message that names the files to fix.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
from great_expectations.data_context import EphemeralDataContext
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.row_conditions import Column

from glasses.config import ValidationConfig
from glasses.data.images import MISSING, conflicting_hashes, label_conflicts

SUITE_NAME = "glasses-manifest"
LEAK_COLUMN = "sha256_in_both_splits"
CONFLICT_COLUMN = "sha256_with_two_labels"
SPLITS = ("train", "test")
_MAX_NAMED_FILES = 20
_DOCS_SITE = "validation_page"
# SUMMARY keeps the result small for big failures, while the index list (keyed by path) still
# lets every message name the first offending files and count the rest.
_RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "unexpected_index_column_names": ["path"],
    "partial_unexpected_count": _MAX_NAMED_FILES,
}


@dataclass
class ValidationReport:
    """What callers need without touching GX: a verdict, readable reasons and loggable artefacts."""

    success: bool
    failures: list[str]
    result: dict
    html: str


class DataValidationError(ValueError):
    """Raised so a bad dataset stops the pipeline before any training time is spent on it."""

    def __init__(self, report: ValidationReport) -> None:
        lines = "\n".join(f"- {failure}" for failure in report.failures)
        super().__init__(f"Data validation failed:\n{lines}")
        self.report = report


def raise_for_failures(report: ValidationReport) -> None:
    """Separate from validation so callers can log the report before deciding to stop."""
    if not report.success:
        raise DataValidationError(report)


def validate_manifest(manifest: pd.DataFrame, rules: ValidationConfig) -> ValidationReport:
    """Run the suite on one manifest; the Data Docs site lives in a temporary directory only."""
    table = _with_derived_columns(manifest)
    with tempfile.TemporaryDirectory(prefix="glasses-gx-docs-") as docs_dir:
        context = _ephemeral_context(Path(docs_dir))
        result = _run_checkpoint(context, table, rules)
        html = _validation_page(Path(docs_dir))
    failures = [_describe(r, table, rules) for r in result.results if not r.success]
    return ValidationReport(
        success=bool(result.success),
        failures=failures,
        result=result.to_json_dict(),
        html=html,
    )


def _with_derived_columns(manifest: pd.DataFrame) -> pd.DataFrame:
    """Flag rows whose content is in both splits (a test image seen in training inflates scores)
    or listed with two labels (no split can hold it honestly).

    GX cannot compare rows across groups, so the flags are derived here, on a copy, and checked by
    plain column expectations.
    """
    hashed = manifest.dropna(subset=["sha256"])  # missing hashes are reported by their own rule
    hashes_in = {split: set(hashed.loc[hashed["split"] == split, "sha256"]) for split in SPLITS}
    leaked = hashes_in["train"] & hashes_in["test"]
    return manifest.assign(
        **{
            LEAK_COLUMN: manifest["sha256"].isin(leaked),
            CONFLICT_COLUMN: manifest["sha256"].isin(conflicting_hashes(manifest)),
        }
    )


def _ephemeral_context(docs_dir: Path) -> EphemeralDataContext:
    """In-memory stores keep the project tree clean; only Data Docs need a (temporary) folder."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            _DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_section_builders": {"expectations": "0", "profiling": "0"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _run_checkpoint(
    context: EphemeralDataContext, table: pd.DataFrame, rules: ValidationConfig
) -> ExpectationSuiteValidationResult:
    """A checkpoint (not batch.validate) so the UpdateDataDocsAction renders the standard page."""
    batch_definition = (
        context.data_sources.add_pandas("manifest")
        .add_dataframe_asset("manifest")
        .add_batch_definition_whole_dataframe("manifest")
    )
    suite = context.suites.add(
        gx.ExpectationSuite(name=SUITE_NAME, expectations=_expectations(rules, len(table)))
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=SUITE_NAME, data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=SUITE_NAME,
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs", site_names=[_DOCS_SITE])],
            result_format=_RESULT_FORMAT,
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": table})
    (result,) = run.run_results.values()
    return result


def _validation_page(docs_dir: Path) -> str:
    """The site holds exactly one validation page, so a glob avoids decoding GX's file URLs."""
    (page,) = (docs_dir / "validations").rglob("*.html")
    return page.read_text(encoding="utf-8")


def _expectations(rules: ValidationConfig, n_rows: int) -> list[gxe.Expectation]:
    """Each expectation carries its rule id in meta, which selects the failure message."""
    # Mean of a 0/1 label is the share of class 1, so count bounds become mean bounds. With fewer
    # than 2 * min_per_class rows the bounds cross, which correctly makes the check unsatisfiable.
    per_class = rules.min_per_class / max(n_rows, 1)
    # `==` builds a GX row condition here; Column.is_in would reject a bool parameter.
    readable = Column("readable") == True  # noqa: E712
    rule_expectations: dict[str, gxe.Expectation] = {
        "row_count": gxe.ExpectTableRowCountToBeBetween(min_value=2 * rules.min_per_class),
        "label_values": gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        "split_values": gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        "present": gxe.ExpectColumnValuesToNotBeInSet(column="problem", value_set=[MISSING]),
        # A missing file is reported once, by `present`.
        "readable": gxe.ExpectColumnValuesToBeInSet(
            column="problem", value_set=[""], row_condition=Column("problem") != MISSING
        ),
        # Unreadable rows carry -1 sizes; the readable rule already reports them.
        "min_width": gxe.ExpectColumnValuesToBeBetween(
            column="width", min_value=rules.min_width, row_condition=readable
        ),
        "min_height": gxe.ExpectColumnValuesToBeBetween(
            column="height", min_value=rules.min_height, row_condition=readable
        ),
        "classes_present": gxe.ExpectColumnDistinctValuesToContainSet(
            column="label", value_set=[0, 1]
        ),
        "per_class_count": gxe.ExpectColumnMeanToBeBetween(
            column="label", min_value=per_class, max_value=1 - per_class
        ),
        "class_share": gxe.ExpectColumnMeanToBeBetween(
            column="label",
            min_value=rules.min_class_share,
            max_value=1 - rules.min_class_share,
        ),
        "sha256_present": gxe.ExpectColumnValuesToNotBeNull(column="sha256"),
        "unique_paths": gxe.ExpectColumnValuesToBeUnique(column="path"),
        "no_split_leak": gxe.ExpectColumnValuesToBeInSet(column=LEAK_COLUMN, value_set=[False]),
        "one_label_per_image": gxe.ExpectColumnValuesToBeInSet(
            column=CONFLICT_COLUMN, value_set=[False]
        ),
    }
    for rule, expectation in rule_expectations.items():
        expectation.meta = {"rule": rule}
    return list(rule_expectations.values())


def _describe(
    result: ExpectationValidationResult, table: pd.DataFrame, rules: ValidationConfig
) -> str:
    """Turn one failed expectation into a sentence a person can act on."""
    errors = _exception_messages(result.exception_info or {})
    if errors:
        return f"{result.expectation_config.type} could not be evaluated: {'; '.join(errors)}"
    rule = (result.expectation_config.meta or {})["rule"]
    return _MESSAGES[rule](result.result, table, rules)


def _exception_messages(info: dict) -> list[str]:
    """GX reports errors either flat or nested per metric id (e.g. for a missing column)."""
    entries = [info] if "raised_exception" in info else list(info.values())
    return sorted({e["exception_message"] for e in entries if e.get("raised_exception")})


def _named_files(result: dict, value_column: str | None = None) -> str:
    """List the first offending paths (with their bad value, if useful) and count the rest."""
    rows = result.get("partial_unexpected_index_list") or []
    names = [
        f"{row['path']} ({value_column}={row[value_column]})" if value_column else row["path"]
        for row in rows
    ]
    hidden = result.get("unexpected_count", len(names)) - len(names)
    return ", ".join(names) + (f" … and {hidden} more" if hidden > 0 else "")


def _class_counts(table: pd.DataFrame) -> str:
    return ", ".join(f"label {label}: {int((table['label'] == label).sum())}" for label in (0, 1))


def _observed_share(result: dict) -> float:
    observed = result.get("observed_value")
    return float("nan") if observed is None else float(observed)


_Message = Callable[[dict, pd.DataFrame, ValidationConfig], str]

_MESSAGES: dict[str, _Message] = {
    "row_count": lambda res, table, rules: (
        f"manifest has {res.get('observed_value')} rows; need at least "
        f"{2 * rules.min_per_class} ({rules.min_per_class} per class)"
    ),
    "label_values": lambda res, table, rules: (
        f"labels must be 0 or 1: {_named_files(res, 'label')}"
    ),
    "split_values": lambda res, table, rules: (
        f"split must be 'train' or 'test': {_named_files(res, 'split')}"
    ),
    "present": lambda res, table, rules: (
        f"listed files that do not exist: {_named_files(res)}; fix the paths or restore the files"
    ),
    "readable": lambda res, table, rules: (
        f"files that do not decode as images: {_named_files(res, 'problem')}"
    ),
    "min_width": lambda res, table, rules: (
        f"images narrower than {rules.min_width} px: {_named_files(res, 'width')}"
    ),
    "min_height": lambda res, table, rules: (
        f"images shorter than {rules.min_height} px: {_named_files(res, 'height')}"
    ),
    "classes_present": lambda res, table, rules: (
        f"both classes must be present; images per class: {_class_counts(table)}"
    ),
    "per_class_count": lambda res, table, rules: (
        f"each class needs at least {rules.min_per_class} images; "
        f"images per class: {_class_counts(table)}"
    ),
    "class_share": lambda res, table, rules: (
        f"share of label 1 is {_observed_share(res):.3f}, outside "
        f"[{rules.min_class_share}, {1 - rules.min_class_share}]; "
        f"images per class: {_class_counts(table)}"
    ),
    "sha256_present": lambda res, table, rules: f"files without sha256: {_named_files(res)}",
    "unique_paths": lambda res, table, rules: f"paths listed twice: {_named_files(res)}",
    "no_split_leak": lambda res, table, rules: (
        f"same image content in train and test: {_named_files(res)}"
    ),
    "one_label_per_image": lambda res, table, rules: (
        "; ".join(label_conflicts(table)) + "; keep one copy with the right label"
    ),
}
