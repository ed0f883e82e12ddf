//! PostgreSQL adapter tests against a real server.
