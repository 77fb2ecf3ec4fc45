"""PostgreSQL: logical dumps, base backups with continuous WAL archiving, point-in-time recovery."""
