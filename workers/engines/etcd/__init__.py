"""The K3s etcd engine: snapshots with etcdctl (or k3s etcd-snapshot), verify, restore.

- ``etcdctl``: the I/O against etcd and its snapshot files, through the one process runner.
- ``snapshot``: pure facts about a snapshot (its status, its key sample, the file's trailer).
- ``scratch``: a throwaway etcd on loopback that a deep verify or a drill restores into.
- ``k3s``: the K3s way to take a snapshot and the cluster-reset sequence of a restore.
- ``driver``: backup, verify, restore and prune, as the engine contract asks.
"""
