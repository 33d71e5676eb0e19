//! Read model: customers (in progress).
