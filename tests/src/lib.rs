//! End-to-end tests of softprobe; the tests live in `tests/tests/`, this library only holds
//! helpers they share.
