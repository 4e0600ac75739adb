"""The trainable networks and their model directory now live in `repspace.nets` (below encoders/, compat/ and
objectives/); this module re-exports them for old imports."""

from repspace.nets import (
                           ARCHS,
                           FORMAT,
                           CompatNet,
                           MLPHead,
                           SmallCNN,
                           build_model,
                           images_to_tensor,
                           load_model,
                           regular_simplex,
                           save_model,
                           training_inputs,
)

__all__ = ["ARCHS", "FORMAT", "CompatNet", "MLPHead", "SmallCNN", "build_model", "images_to_tensor", "load_model",
           "regular_simplex", "save_model", "training_inputs"]
