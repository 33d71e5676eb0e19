//! Read model: cases (in progress).
