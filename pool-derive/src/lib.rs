//! `#[derive(Poolable)]` for `riptide-pool` (filled in by the derive issue).
