//! Byte-exact codec tests.
