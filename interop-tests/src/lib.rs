//! Tests live in `tests/`; see the README there.
