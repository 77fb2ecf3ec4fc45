"""DR runbooks: the operations a step can name, the run state machine's I/O, reports."""
