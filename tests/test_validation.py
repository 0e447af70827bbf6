"""The manifest gate must pass clean data and name the exact files behind every failure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from glasses.config import ValidationConfig
from glasses.validation import (
    LEAK_COLUMN,
    DataValidationError,
    raise_for_failures,
    validate_manifest,
)

BAD = "does not decode as an image"  # what the scan records for a corrupt file
RULES = ValidationConfig(min_width=32, min_height=32, min_per_class=3, min_class_share=0.1)


def make_manifest(n_per_class: int = 5) -> pd.DataFrame:
    """Balanced, valid manifest: every 5th image of each class is in the test split."""
    rows = []
    for label in (0, 1):
        for i in range(n_per_class):
            name = f"c{label}_{i:02d}.jpg"
            rows.append(
                {
                    "path": f"/fake/data/p{i % 3}/{name}",
                    "label": label,
                    "group": f"p{i % 3}",
                    "width": 64,
                    "height": 48,
                    "mode": "RGB",
                    "bytes": 1234,
                    "sha256": f"{label:02d}{i:062x}",
                    "readable": True,
                    "problem": "",
                    "split": "test" if i % 5 == 0 else "train",
                }
            )
    return pd.DataFrame(rows)


def failing(manifest: pd.DataFrame, rules: ValidationConfig = RULES) -> str:
    report = validate_manifest(manifest, rules)
    assert not report.success
    assert report.failures
    json.dumps(report.result)
    return "\n".join(report.failures)


@pytest.fixture(scope="module")
def valid_report():
    return validate_manifest(make_manifest(), RULES)


def test_valid_manifest_passes(valid_report) -> None:
    assert valid_report.success, valid_report.failures
    assert valid_report.failures == []


def test_result_is_json_serialisable_and_names_the_suite(valid_report) -> None:
    text = json.dumps(valid_report.result)
    assert valid_report.result["suite_name"] == "glasses-manifest"
    assert "expect_column_values_to_be_in_set" in text


def test_html_is_the_data_docs_page(valid_report) -> None:
    assert valid_report.html.lstrip().startswith("<!DOCTYPE html>")
    assert "glasses-manifest" in valid_report.html


def test_caller_manifest_is_not_mutated() -> None:
    manifest = make_manifest()
    before = manifest.copy()
    validate_manifest(manifest, RULES)
    assert LEAK_COLUMN not in manifest.columns
    pd.testing.assert_frame_equal(manifest, before)


def test_nothing_is_written_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    validate_manifest(make_manifest(), RULES)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_file_is_named() -> None:
    manifest = make_manifest()
    manifest.loc[2, ["readable", "width", "height", "mode", "problem"]] = [False, -1, -1, "", BAD]
    message = failing(manifest)
    assert "c0_02.jpg" in message
    assert "decode" in message
    # The -1 sizes of an unreadable file are not reported a second time as "too small".
    assert "px" not in message


def test_missing_file_is_named_as_missing_not_as_undecodable() -> None:
    manifest = make_manifest()
    manifest.loc[2, ["readable", "width", "height", "mode", "bytes", "sha256", "problem"]] = [
        False, -1, -1, "", -1, "", "missing"
    ]  # fmt: skip
    report = validate_manifest(manifest, RULES)
    assert report.failures == [
        "listed files that do not exist: /fake/data/p2/c0_02.jpg; fix the paths or restore the "
        "files"
    ]


def test_same_image_with_two_labels_names_both_files() -> None:
    manifest = make_manifest()
    glasses = manifest.index[manifest["label"] == 1][1]
    manifest.loc[glasses, "sha256"] = manifest.loc[1, "sha256"]  # c0_01's content, label 1
    assert manifest.loc[[1, glasses], "split"].tolist() == ["train", "train"]
    message = failing(manifest)
    assert (
        "/fake/data/p1/c0_01.jpg (label 0), /fake/data/p1/c1_01.jpg (label 1) hold the same "
        "image with different labels" in message
    )


def test_too_small_file_is_named() -> None:
    manifest = make_manifest()
    manifest.loc[3, "width"] = 16
    manifest.loc[7, "height"] = 8
    message = failing(manifest)
    assert "c0_03.jpg (width=16)" in message
    assert "c1_02.jpg (height=8)" in message


def test_label_outside_zero_one_is_named() -> None:
    manifest = make_manifest()
    manifest.loc[4, "label"] = 2
    assert "c0_04.jpg (label=2)" in failing(manifest)


def test_single_class_reports_counts() -> None:
    manifest = make_manifest().assign(label=1)
    message = failing(manifest)
    assert "label 0: 0, label 1: 10" in message


def test_too_few_images_in_one_class_reports_counts() -> None:
    manifest = make_manifest(n_per_class=20)
    manifest = manifest[(manifest["label"] == 0) | (manifest.index < 22)]
    message = failing(manifest, ValidationConfig(min_per_class=3, min_class_share=0.05))
    assert "at least 3 images" in message
    assert "label 0: 20, label 1: 2" in message


def test_unbalanced_class_share_fails() -> None:
    manifest = make_manifest(n_per_class=100)
    manifest = manifest[(manifest["label"] == 1) | (manifest.index < 10)]
    message = failing(manifest)
    assert "share of label 1 is 0.909" in message
    assert "label 0: 10, label 1: 100" in message


def test_duplicate_across_train_and_test_is_named() -> None:
    manifest = make_manifest()
    test_row, train_row = 0, 1
    assert manifest.loc[[test_row, train_row], "split"].tolist() == ["test", "train"]
    manifest.loc[train_row, "sha256"] = manifest.loc[test_row, "sha256"]
    message = failing(manifest)
    assert "train and test" in message
    assert "c0_00.jpg" in message
    assert "c0_01.jpg" in message


def test_duplicate_within_train_only_passes() -> None:
    manifest = make_manifest()
    assert manifest.loc[[1, 2], "split"].tolist() == ["train", "train"]
    manifest.loc[2, "sha256"] = manifest.loc[1, "sha256"]
    report = validate_manifest(manifest, RULES)
    assert report.success, report.failures


def test_missing_sha256_is_named_once() -> None:
    manifest = make_manifest()
    manifest.loc[[0, 1], "sha256"] = None  # one test row, one train row
    report = validate_manifest(manifest, RULES)
    assert report.failures == [
        "files without sha256: /fake/data/p0/c0_00.jpg, /fake/data/p1/c0_01.jpg"
    ]


def test_long_lists_are_truncated_with_a_count() -> None:
    manifest = make_manifest(n_per_class=30).assign(readable=False, problem=BAD)
    message = failing(manifest)
    assert "… and 40 more" in message


def test_missing_column_is_reported_not_hidden() -> None:
    message = failing(make_manifest().drop(columns=["width"]))
    assert 'column "width"' in message


def test_raise_for_failures_carries_report_and_file_name() -> None:
    manifest = make_manifest()
    manifest.loc[2, ["readable", "problem"]] = [False, BAD]
    report = validate_manifest(manifest, RULES)
    with pytest.raises(DataValidationError, match="c0_02.jpg") as excinfo:
        raise_for_failures(report)
    assert str(excinfo.value).startswith("Data validation failed:\n- ")
    assert excinfo.value.report is report


def test_raise_for_failures_is_silent_on_success(valid_report) -> None:
    raise_for_failures(valid_report)


def test_impossible_class_share_is_rejected() -> None:
    with pytest.raises(ValueError, match="min_class_share"):
        ValidationConfig(min_class_share=0.6)
