"""Integration tests: the litellm path over recorded HTTP (see docs/testing.md)."""
