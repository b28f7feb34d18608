"""Early exits: multi-exit models, their training methods (registered with ``ondevice train --method exits-*``),
and per-input policies that decide when to stop.

Importing the package registers the methods with ``ondevice.train`` and their checkpoints with
``ondevice.checkpoint.load_model``.
"""

from . import training  # noqa: F401  (registers the exits-* methods)
