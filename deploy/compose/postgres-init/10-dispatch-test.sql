-- Run by the postgres image's entrypoint on first start (empty volume) as
-- POSTGRES_USER (dispatch), which owns POSTGRES_DB already. Tests use a
-- database of their own so that they never touch the worker's data.
CREATE DATABASE dispatch_test OWNER dispatch;
