"""custdq pipeline: ingest -> normalise -> check -> items -> outputs, plus the CLI and store.

The folder reads as the data flow of one night:

    ingest/        files -> raw text frames (+ source line numbers, quarantine of malformed lines)
    columns.py     the extract's column contract (canonical names, aliases, required/optional)
    contract.py    the pandera schema of the parsed extract
    normalise.py   SPEC 2.5 normalisation, parsed dates and sex codes, raw kept for display
    scope.py       quarantine (no policy number) and scope (term under one year)
    engine.py      runs every enabled row rule of checks/ into one findings table
    book/          the book-wide contact index: rows.py (keyed contact rows of an extract),
                   tonight.py (tonight's rows, packed), digests.py (64-bit digests, membership),
                   segments.py (night tiers a segment at a time), signature.py (per-policy
                   fingerprints), index.py (the index in the case store), detect.py
                   (PHONE_SHARED/BANK_SHARED for one night), load.py (`custdq index load`)
    hashkey.py     the HMAC key (file 0600 or environment) and keyed hashing
    items.py       findings -> items with stable ids and deadlines
    calendar.py    mainland China's working-day calendar (chinese-calendar + config)
    cases/         the lifecycle: night.py (findings -> the open list), undo.py (each night's
                   journal, take-back), imports.py, listing.py, quarterly.py, tables.py
    nights.py      the nights in the store: take back, refuse or rewind an older night, runs list
    outputs.py     atomic writers for items, quarantine, manifest
    worklists.py   one xlsx per branch; labels.py the Chinese names people read
    expectations.py  the batch expectations (GX); datadocs.py makes Data Docs open offline
    dashboard/     the managers' page
    alerts.py      the night's warnings, one line each
    store.py       the case store (SQLAlchemy): its URL, tables, creation only by run/index load
    clock.py       China time
    chunks.py      the row-level stages chunk by chunk (check_chunk: one chunk's results)
    spark/         the Spark engine: chunks checked as Spark tasks, the shared-value group-by
    run.py         the nightly job, stage by stage
    cli.py         the click commands
"""

import warnings

__version__ = "0.1.0"

# With the spark extra installed, pandera imports pyspark.pandas, whose import warns that PySpark
# does not fully support pandas 3: noise on every run's stderr, about a part custdq does not use.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
