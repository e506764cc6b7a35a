"""Benchmarks of the API path (``make bench``): each writes ``.bench/<name>.json``.

They are not tests: they measure, on whatever machine runs them, against the local API
server in a subprocess, and record their inputs and raw figures next to the ratio.
"""
