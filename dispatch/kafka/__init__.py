"""Kafka adapters: topic set-up, the event producer and the dead-letter publisher."""
