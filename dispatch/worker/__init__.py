"""The projection worker: a Faust app running the shared projector against PostgreSQL."""
