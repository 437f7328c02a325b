"""Runners feed records to the shared ``Projector``: files (embedded), Kafka (worker)."""
