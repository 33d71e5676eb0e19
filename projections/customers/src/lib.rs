//! # crm-customers: the unified customer view
//!
//! The `customers` read model folds every event family into one view per
//! customer: profile, identities, consents, interactions on every channel,
//! cases, campaign contacts and a timeline, plus the screen-pop lookup and
//! the interaction views (`GET /v1/customers/{id}`, `.../timeline`,
//! `/v1/lookup`, `/v1/interactions/{id}`, `/v1/interactions`).
//!
//! ## Model
//! * **Facts stay under the id their event carried.** A customer's profile,
//!   consents and campaign contacts are kept under the `customer_id` of their
//!   events; an interaction or a case is attributed to exactly one customer
//!   id, derived from its own stream only: the latest `interaction.identified`
//!   (`case.customer_identified`) by `occurred_at` then `event_id` if any,
//!   else the latest envelope `customer_id` on its other events. A `from`
//!   identity never attributes; it only feeds lookup suggestions.
//! * **Merges are resolved at query time.** `customer.merged`/`unmerged`
//!   keep a merge edge per (merged, survivor) pair, in force or not by the
//!   latest of the two for that pair. A query resolves the requested id to
//!   its survivor (transitively) and reads the union of every id resolving
//!   to it, so an unmerge gives back exactly what carried the merged id.
//! * **Derived entries are a function of facts.** Each interaction (case)
//!   record remembers which derived entries it wrote (customer, sort time,
//!   channel); every change re-derives them and applies the difference:
//!   per-customer indexes (recent interactions, open cases), counters, and
//!   its events in the customer's timeline, moved when the attribution
//!   changes. Because the facts commute (latest-wins by `occurred_at`,
//!   sets, counters), the stored state is the same for every delivery order
//!   that keeps each stream's order.
//!
//! See `docs/customers.md` for the key layout, the formulas and the choices
//! made where the contract is silent.

mod apply;
pub mod keys;
pub mod query;
mod state;
mod summary;

pub use query::{
    customer, interaction, interactions, lookup, resolve, timeline, CampaignView, ConsentChange,
    ConsentView, CustomerView, IdentityRef, IdentityView, InteractionListItem,
    InteractionListParams, InteractionView, LookupMatch, LookupResponse, OpenCase,
    RecentInteraction, Stats, Suggestion, TimelineItem, TimelineParams, TransferView,
};
pub use state::Hint;

use crm_events::Event;
use crm_projection::{ApplyError, Projection, Tx};

/// The `customers` projection.
pub struct CustomersProjection;

impl Projection for CustomersProjection {
    fn name(&self) -> &'static str {
        "customers"
    }

    fn format_version(&self) -> u32 {
        // 2: one timeline (`ta/`, read backwards for newest first) instead
        // of two. 3: no `fi/` (the first interaction is the last of `ri/`).
        // 4: the keys of a customer, an interaction and a case grouped
        // under its id (`u/`, `v/`, `w/`; see `keys::Own`).
        4
    }

    fn apply(&self, tx: &mut Tx<'_>, event: &Event) -> Result<(), ApplyError> {
        apply::apply(tx, event)
    }
}
