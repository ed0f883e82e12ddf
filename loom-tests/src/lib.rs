//! loom models of the riptide-pool core; see `tests/`.
