"""Starting and stopping Spark for one night, from the `spark` settings."""

from __future__ import annotations

import os
import sys
import warnings

from pipeline.errors import InputError
from pipeline.settings import Settings

# PySpark 4 warns that it does not fully support pandas 3; what custdq asks of it (mapInPandas
# over binary results, a group-by, a small createDataFrame) is covered by tests/test_spark.py.
PANDAS_WARNING = "PySpark does not yet fully support pandas"


def quiet_warnings() -> None:
    warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)


def start(cfg: Settings, chunk_rows: int):
    """A SparkSession for the night; InputError (exit 2) when PySpark or Java is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("--engine spark needs PySpark: install custdq with its spark extra "
                         "(pip install 'custdq[spark]') and Java 17") from None
    quiet_warnings()
    settings = cfg.spark
    # executors run this interpreter unless told otherwise (local mode: the same virtualenv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(settings.app_name)
    if settings.master:
        builder = builder.master(settings.master)
    conf = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.shuffle.partitions": "16",
        "spark.ui.showConsoleProgress": "false",
    }
    if (settings.master or "").startswith("local"):
        conf["spark.ui.enabled"] = "false"
    conf.update({k: str(v) for k, v in settings.conf.items()})
    for k, v in conf.items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - Java missing, bad master URL: a clear error, not a trace
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--engine spark: Spark did not start ({first[:300]}); is Java 17 installed "
                         "(JAVA_HOME) and is spark.master right?") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark
