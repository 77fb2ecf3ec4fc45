"""I/O adapters: storage, subprocesses, databases and remote APIs."""
