-- Named queries for the migrations runner (fulfil/migrations.py) and the embedded server's
-- databases (fulfil/embedded_db.py, fulfil/demo.py).

-- name: lock_migrations
SELECT pg_advisory_lock(%(key)s);

-- name: unlock_migrations
SELECT pg_advisory_unlock(%(key)s);

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS fulfil_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migrations_table_exists
SELECT to_regclass('fulfil_schema_migrations') IS NOT NULL AS exists;

-- name: applied_migrations
SELECT version, name, checksum, applied_at FROM fulfil_schema_migrations;

-- name: record_migration
INSERT INTO fulfil_schema_migrations (version, name, checksum)
VALUES (%(version)s, %(name)s, %(checksum)s);

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %(name)s;

-- name: create_database
-- {} is the database's name, composed as an identifier (psycopg.sql), never as text.
CREATE DATABASE {};

-- name: drop_database
DROP DATABASE IF EXISTS {} WITH (FORCE);
