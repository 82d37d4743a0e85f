"""Test helpers shared by every protocol's tests."""
