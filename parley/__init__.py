"""The top of Parley: the ``parley`` command line, the pipeline and its parallel lanes.

It sits over the stage packages (``dialogue``, ``reward_models``, ``serving``), which sit over ``groundwork``.
"""

__version__ = "0.1.0"
