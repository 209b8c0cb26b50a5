"""Scheduling: per-model admission and dynamic batching, and the process-wide decoded-pixel
budget. Imports nothing above it (no data plane, no API)."""
