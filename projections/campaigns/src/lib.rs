//! # crm-campaigns: the campaign outcomes read model
//!
//! Folds `campaign.*` events, plus `consent.*` and `customer.merged` /
//! `unmerged` from the customer streams, into per-campaign funnels (overall
//! and by agent, channel and day), dialer work lists (pending, retry,
//! callback, done, suppressed) and a compliance judgement of every attempt.
//! See `docs/campaigns.md` for every formula and choice.
//!
//! ## Model
//! Facts are kept under the ids their events carried, in lists sorted by
//! `(occurred_at, event_id)`, so recording them commutes:
//! - `ct/{campaign}/{customer}`: a contact's assignments, attempts, outcomes;
//! - `cu/{customer}`: its consent events and its `do_not_contact` outcomes
//!   (which hold in every campaign);
//! - `me/{merged}/{survivor}` + `mi/{survivor}/{merged}`: the merge graph.
//!
//! What depends on several streams is *derived*: an effective contact
//! `ec/{campaign}/{survivor}` is a pure function of the facts of the
//! survivor's merge group (contact facts of every id of the group in that
//! campaign, consents and do-not-contacts of every id of the group). When a
//! fact arrives, only the effective contacts it can change are re-derived:
//! a campaign event re-derives one contact; a consent or do-not-contact
//! re-derives the customer's group in each of its campaigns (index
//! `cc/{customer}/{campaign}`); a merge re-derives the groups before and
//! after. Re-deriving subtracts the contact's old contribution from the
//! aggregates `ag/{campaign}/{slice}` and adds the new one; contributions
//! are integers (values in millionths), so the aggregates are exact sums and
//! the final state is the same byte for byte in every delivery order. The
//! work-list indexes (`st/`, `sa/`, `ex/`, `vi/`) are likewise owned by the
//! derived contact and replaced with it.

mod derive;
mod fold;
mod graph;
mod keys;
mod model;
pub mod query;

pub use fold::{audit, CampaignsProjection};
pub use query::{
    campaign, contact, contacts, violations, CampaignView, ContactDetail, ContactItem,
    ContactState, ContactsParams, SliceView, Violation, ViolationsParams,
};
