"""What the test markers of pyproject.toml follow from, shared by tests/conftest.py (which applies
them) and tests/unit/test_process_marks.py (which checks the rest are written down)."""

# Fixtures of tests/conftest.py that start a redis-server: their tests are marked `process`.
PROCESS_FIXTURES = frozenset({"redis_proc", "redis_client", "fresh_redis"})
