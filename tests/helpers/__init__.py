"""Test helpers shared by unit and integration tests (no fixtures here: see tests/conftest.py)."""
