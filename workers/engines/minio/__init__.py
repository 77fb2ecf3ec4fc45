"""MinIO object storage: incremental, content-addressed snapshots of buckets, restorable as of
a time.

``snapshot`` is the pure policy (what a run copies, what a restore writes, what GC frees);
``source`` talks to the S3 endpoint being backed up or restored into, ``blobs`` to the
content-addressed blobs in the backup store, and ``mirror``, ``restoration``,
``verification`` and ``retention`` are the operations.
"""
