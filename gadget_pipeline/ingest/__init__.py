"""Streaming ingest, offline: the order generator and the local Pipes/Firehose runtimes.

* ``generator``: a deterministic gadget-order lifecycle (plan) and its writer to the orders table.
* ``pipe_runner``: DynamoDB stream -> Kinesis, shaped and partitioned as the deployed EventBridge pipe does.
* ``firehose_runner``: Kinesis -> the transform handler -> S3 objects named as Firehose names them.
* ``stream``: both runners in one loop (``run_stream``, ``drain_stream``) and the live dev pipeline.
* ``cli``: the ``generate`` and ``stream`` verbs.
"""
