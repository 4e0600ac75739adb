"""Report section for alignment: model x model matching table and zero-shot stitching.

It renders what `repspace.studies.alignment.alignment_rows` measured."""

from __future__ import annotations

from repspace.report.html import Report


def alignment_section(report: Report, rows: list[dict], title: str = "Alignment between models") -> list[dict]:
    """Append the section for `alignment_rows`; returns the rows."""
    report.section(
        title,
        Report.text("Matching: a source item, translated, should be nearest to the same item in the target space, "
                    "among all test items (top-1, top-5). Procrustes is fitted on the train half of the shared ids and "
                    "scored on the test half; relative representations use 300 anchor items (fewer if the train half is smaller); "
                    "unsupervised translation sees no pairs at all (scored on all items). Stitching: a logistic "
                    "regression trained on the target model's vectors classifies the source model's test items "
                    "through the translator."),
        Report.table(rows),
    )
    return rows
