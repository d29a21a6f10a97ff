"""Athena itself, through pyathena's pandas cursor, in the stack's workgroup.

The connection is opened on first use, so building the engine costs nothing and needs no AWS access.
Parameters go to Athena as server-side ExecutionParameters (qmark style), one literal per `?`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from gadget_pipeline.athena.engine import AthenaEngine
from gadget_pipeline.athena.errors import QueryError
from gadget_pipeline.athena.results import normalize_frame
from gadget_pipeline.athena.sql_text import Parameters, athena_literal, bind_parameters
from gadget_pipeline.aws import AwsTarget


class AwsAthenaEngine(AthenaEngine):
    def __init__(self, target: AwsTarget, outputs: Mapping[str, str], *, poll_interval: float = 1.0) -> None:
        super().__init__(target, outputs)
        self.work_group = outputs["AthenaWorkGroupName"]
        self.s3_staging_dir = outputs["AthenaResultsLocation"]
        self.poll_interval = poll_interval
        self._connection: Any = None

    def _cursor(self) -> Any:
        if self._connection is None:
            import pyathena
            from pyathena.pandas.cursor import PandasCursor

            self._connection = pyathena.connect(
                work_group=self.work_group,
                s3_staging_dir=self.s3_staging_dir,
                region_name=self.target.region,
                schema_name=self.database,
                poll_interval=self.poll_interval,
                cursor_class=PandasCursor,
            )
        return self._connection.cursor()

    def _run(self, sql: str, parameters: Parameters) -> Any:
        from pyathena.error import Error as PyAthenaError

        bound, values = bind_parameters(sql, parameters)
        cursor = self._cursor()
        try:
            cursor.execute(bound, parameters=[athena_literal(v) for v in values] or None, paramstyle="qmark")
        except PyAthenaError as error:
            text = str(error).strip()
            raise QueryError(f"Athena: {text.splitlines()[0] if text else type(error).__name__}") from error
        return cursor

    def query(self, sql: str, parameters: Parameters = None) -> pd.DataFrame:
        cursor = self._run(sql, parameters)
        if not cursor.description:
            return pd.DataFrame()
        frame = cursor.as_pandas()
        return normalize_frame(frame, {column[0]: column[1] for column in cursor.description})

    def execute(self, sql: str, parameters: Parameters = None) -> None:
        self._run(sql, parameters)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
