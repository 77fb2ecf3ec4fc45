"""One folder per component kind: each engine's policy and I/O."""
