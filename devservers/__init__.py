"""Throwaway servers the tests and the benchmarks start on loopback: PostgreSQL (:mod:`devservers.postgres`),
SeaweedFS S3 (:mod:`devservers.seaweedfs`) and a ``certstore serve`` process (:mod:`devservers.api`).

Not part of the application: nothing here imports certstore code or pytest (tests/test_architecture.py), so
``python -m bench`` runs without the test suite; the pytest fixtures on these servers are in ``tests/servers/``.
"""
