"""The terminal front doors' rendering: the console chat, its log file, rich tables."""
