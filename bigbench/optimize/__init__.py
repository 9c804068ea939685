"""``bigbench optimize``: pruned, quantized and distilled variants of a model, measured side by
side with it on one device.

Owns: the recipes (prune.py, quantize.py, distill.py), the variant folders (artifacts.py), the
interleaved measurement (measure.py), the table (output.py) and the run that composes them
(run.py); the Pareto marks come from ``bigbench.pareto``. Builds on the workload, the step
builder and the bench point measurement; must never import ``bigbench.cli``.
"""
