"""`cpep-bench perf`: the device's GEMM roofline, the training steps, the data paths, zero-shot queries and CPU
contention, measured side by side in one process; and projections of the paper's schedule from the measured rates.

    roofline.py    a large matmul: the FLOP/s the steps are a fraction of
    steps.py       MAE, alignment and supervised training steps at the default and the paper's model sizes
    data.py        windows read from the HDF5 files and sliced from memory, beside a plain memory copy
    zero_shot.py   zero-shot queries per second on random embeddings
    contention.py  the step rate with one CPU-bound process beside it
    projection.py  hours of a suite's training stages on emg2pose's training split, from the measured rates
    timing.py      warm-up, repeats and medians, FLOP counting, peak memory
    table.py       the table, its CSV and JSON
    measure.py     all of the above in order

This file imports nothing heavy: the CPU-bound process of contention.py starts by importing this package.
"""
