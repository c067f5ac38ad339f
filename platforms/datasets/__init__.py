"""Reading, mapping, validating and splitting user datasets, one module per concern.

Users bring JSONL, JSON, CSV or TSV files with their own column names. This package turns such a
file into a list of examples keyed by the task's column keys (`sentence1`, `label`, ...), or
raises a `DatasetError` that names the file, the line and the column and says what to do: the
message goes to the user verbatim, so it must never be a stack trace.

- `reading`: a file's format and its records (`read_rows`, `read_columns`)
- `mapping`: which column plays which role (`ColumnMapping`, `guess_mapping`)
- `examples`: records to task examples (`iter_examples`, `load_examples`)
- `validation`: a whole file checked before a job is recorded (`validate_file`, `check_labels`)
- `splitting`: validation and test rows set aside (`SplitPlan`, `split_examples`)
- `preview`: the first rows as the model sees them, the label distribution, warnings (`preview_file`)
- `skipping`: bad rows counted, refused or skipped (`RowPolicy`, `BadRowsError`)
"""

from platforms.datasets.errors import DatasetError
from platforms.datasets.examples import iter_examples, load_examples
from platforms.datasets.mapping import ColumnMapping, example_mapping, guess_mapping
from platforms.datasets.reading import Format, Row, flatten_keys, lookup, read_columns, read_rows, sniff_format
from platforms.datasets.preview import Preview, preview_file
from platforms.datasets.skipping import BadRow, BadRowsError, RowPolicy
from platforms.datasets.splitting import SplitPlan, split_examples
from platforms.datasets.validation import DatasetSummary, check_labels, validate_file

__all__ = [
    "BadRow", "BadRowsError", "Preview", "RowPolicy", "preview_file",
    "ColumnMapping", "DatasetError", "DatasetSummary", "Format", "Row", "SplitPlan", "check_labels",
    "example_mapping", "flatten_keys", "guess_mapping", "iter_examples", "load_examples", "lookup", "read_columns",
    "read_rows", "sniff_format", "split_examples", "validate_file",
]
