//! Workspace-level tests live in `tests/tests/`; this library only holds shared helpers for them.
