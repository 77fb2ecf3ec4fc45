"""Tests of the K3s etcd engine against a real etcd."""
