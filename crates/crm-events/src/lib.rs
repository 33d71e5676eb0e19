//! # crm-events
//!
//! The event contract of crm-ledger (`shared/spec/events.md`) as typed Rust:
//! the envelope ([`Event`]), the catalog ([`EventType`], [`EventData`] and the
//! `data` structs in [`catalog`]), identity normalisation ([`identity`]),
//! the JSON Schemas generated from these types ([`schema`]) and ingest
//! validation against them ([`Validator`]).
//!
//! This crate does no I/O: the log, the projections and the HTTP layer all
//! build on it.

pub mod catalog;
mod event;
pub mod identity;
mod quick;
pub mod schema;
pub mod upcast;
mod validate;

pub use catalog::*;
pub use event::{format_time, Event, EventData, EventType, IdField, StreamKind};
pub use identity::{Identity, IdentityKind};
pub use validate::{too_deep, FieldError, Validator, MAX_DEPTH};
