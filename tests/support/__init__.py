"""Test support: real servers the tests start themselves."""
