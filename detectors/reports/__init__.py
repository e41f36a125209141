"""What a detector run reports: metric tables (tables.py) and preview sheets of its maps (preview.py).

    from anomalygen.detectors.reports import markdown_table, write_metrics, preview_run
"""

from anomalygen.detectors.reports.preview import preview_run
from anomalygen.detectors.reports.tables import (COST_COLUMNS, METRIC_COLUMNS, csv_table, markdown_table, metrics_json,
                                                 summarize, write_metrics)

__all__ = ["COST_COLUMNS", "METRIC_COLUMNS", "csv_table", "markdown_table", "metrics_json", "preview_run", "summarize",
           "write_metrics"]
