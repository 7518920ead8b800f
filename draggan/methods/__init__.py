"""Drag methods behind one contract (`DragMethod`), chosen by name: `DragConfig(method=...)`, `drag.method=...`.

The shipped methods, one file each (`available()` lists what is registered):

- `draggan`: Pan et al., SIGGRAPH 2023: motion supervision and nearest-neighbour point tracking.
- `freedrag`: Ling et al., CVPR 2024: adaptive template features and a line search along the drag, no tracking.
- `stabledrag`: Cui et al., ECCV 2024: a discriminative tracker and confidence-based motion supervision.
- `uclt`: Endo, Pacific Graphics 2022: a latent transformer that predicts the edit in one pass.

A method of your own is a `DragMethod` subclass in your own file, registered with `register_method(name, cls)`
(or named on the command line as `drag.method=<module>:<Class>`); see the README, "Add your own method".
"""

from draggan.methods.base import DragMethod, StepOutput, method_options
from draggan.methods.registry import available, get_method, register_method

__all__ = ["DragMethod", "StepOutput", "available", "get_method", "method_options", "register_method"]
