"""kosmos-backup workers: the engine (core + adapters) and the RQ jobs."""
