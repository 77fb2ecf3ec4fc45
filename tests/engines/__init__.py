"""Engine tests, one folder per component kind."""
