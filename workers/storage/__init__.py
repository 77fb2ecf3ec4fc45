"""Where backups live: the stores (S3, local), the streaming pipeline, the repository, expiry."""
