"""The one place that picks the engine a night (or a book load) runs on, by its name
(`--engine`); everything else talks to it through pipeline.rows.engine.Engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.errors import InputError

if TYPE_CHECKING:  # the command line reads NAMES without importing the engines
    from pipeline.rows.engine import Engine
    from pipeline.settings import Settings

NAMES = ("local", "spark")


def check_name(name: str) -> None:
    """An engine name the operator typed: exit 2 before anything is opened when it is unknown."""
    if name not in NAMES:
        raise InputError(f"--engine {name}: the engines are {' and '.join(NAMES)}")


def engine_for(name: str, cfg: Settings) -> Engine:
    """The engine `name`, started (Spark's session and staging folder are made here)."""
    check_name(name)
    if name == "spark":
        from pipeline.spark.night import SparkNight  # PySpark is imported only for a Spark night

        return SparkNight(cfg)
    from pipeline.rows.engine import LocalEngine

    return LocalEngine(cfg)
