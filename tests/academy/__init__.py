"""Tests of the academy track material (exercises)."""
