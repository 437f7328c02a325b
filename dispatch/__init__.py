"""Outage-repair dispatch engine: the write side and the product's entry points."""
