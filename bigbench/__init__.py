"""bigbench: train and benchmark neural networks and report what each run cost.

Importing this package must stay cheap: it defines the version only, so that
``bigbench --help`` and config validation never pay for importing torch.
"""

__version__ = "0.1.0"
