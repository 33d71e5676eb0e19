//! Demo history generator (in progress).
