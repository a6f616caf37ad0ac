"""Helpers of bench/bench_detection.py: the stream generator, the detectors, the floors."""
