"""Tests (a package so test-only action modules are importable as tests.engine.*)."""
