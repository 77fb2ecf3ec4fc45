"""One folder per component kind: each engine behind the one contract."""
