"""Every training method by name, without importing torch (for CLI help and error messages).

`repspace train --method` takes one of two families: compatible training with labels (the registry
`repspace.compat.losses`) or self-supervised objectives without labels (`repspace.objectives.methods.OBJECTIVES`,
whose names are listed here so that listing them never imports torch; a test keeps the two equal).
"""

from repspace.compat.losses import METHODS as COMPAT_METHODS

ADAPTER_METHODS: tuple[str, ...] = ("procrustes", "affine", "lowrank", "mlp")  # query-side adapters (new -> old)
SELF_SUPERVISED_METHODS: tuple[str, ...] = ("simclr", "vicreg", "barlow", "byol", "simsiam", "myow", "hydra", "sie",
                                            "obow", "cmim")

__all__ = ["ADAPTER_METHODS", "COMPAT_METHODS", "SELF_SUPERVISED_METHODS"]
