"""Delegate pre-flight: will a bundle run on the phone's GPU, NNAPI or NPU, and where does it fall back?

Support tables per delegate (`tables/`, data with their sources cited), a partitioner that reproduces how
LiteRT splits a graph between a delegate and the CPU (`partition.py`), reports (`report.py`), the manifest's
delegate plan (`plan.py`), offline NPU compilation (`npu.py`) and the `banana preflight` command.
"""
