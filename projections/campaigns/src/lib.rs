//! Read model: campaigns (in progress).
