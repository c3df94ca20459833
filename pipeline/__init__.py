"""custdq pipeline, its packages in the order a night runs: ingest -> rows -> book -> night ->
cases -> store -> outputs; spark/ (the other engine), sample/ and the CLI beside them.

The tour of the tree, module by module, is docs/index.md ("A tour of the code"); how a night
runs, stage by stage, is docs/night.md.
"""

import warnings

__version__ = "0.1.0"

# With the spark extra installed, pandera imports pyspark.pandas, whose import warns that PySpark
# does not fully support pandas 3: noise on every run's stderr, about a part custdq does not use.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
