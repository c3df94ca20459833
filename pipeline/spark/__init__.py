"""The Spark engine (`custdq run --engine spark`, issue 7; README "Running on Spark").

The same night as the local engine, with its two heavy parts on Spark:

- the row-level stages (normalise, contract, scope, every row rule, tonight's keyed contact
  rows) run as Spark tasks, one per chunk, through `mapInPandas` calling the very function the
  local engine calls (pipeline.rows.chunks.check_chunk);
- the night-wide grouping of PHONE_SHARED / BANK_SHARED (which values do two or more customers
  carry, tonight's rows and the stored book's together) is a Spark group-by.

The driver reads the extract files (encodings, headers, malformed lines and their line numbers
need the whole file in order), writes them as Parquet chunks to a staging folder every executor
can read, takes the chunks' results back in the order of the extract, and does the rest of the
night through the same case store, so the outputs are the local engine's
(tests/test_spark.py compares them).
"""
