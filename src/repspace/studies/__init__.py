"""Measurements that combine several capabilities (compressors with indexes, training with adapters), each
returning plain rows that `repspace.report` renders. They sit above compress/, index/, compat/ and evaluation/
(and below report/ and the demo), so none of those packages imports sideways to run them.

- `repspace.studies.compact.compact_study`: prefix curves of truncation / PCA / Matryoshka, and index specs.
- `repspace.studies.upgrade.compatible_training`, `adapter_recovery`: compatible CNNs, query-side adapters.
- `repspace.studies.backends.backend_study`: every encoder backend of a model side by side (speed against the fp32
  GEMM peak, quality and compatibility against the torch gallery).
"""
