"""Helpers shared by tests of several areas (import them; they define no fixtures)."""
