//! The typed catalog: one `data` struct per event type and version.
//!
//! These structs are the single source of the contract. The JSON Schemas in
//! `schemas/` are generated from them (see [`crate::schema`]), and ingest
//! validates against those generated schemas before it deserialises into
//! these types. Every `data` struct keeps unknown fields in `extra`, so they
//! pass through untouched (forward compatibility, events.md).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::Identity;

/// Unknown fields inside `data`, kept and passed through.
pub type Extra = BTreeMap<String, Value>;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }
        /// Read from a string only: serde's derived enums also take
        /// `{"name": null}`, which the schema does not (see `crate::quick`).
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        write!(f, "one of: {}", [$($text),+].join(", "))
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        match s {
                            $($text => Ok($name::$variant),)+
                            _ => Err(E::unknown_variant(s, &[$($text),+])),
                        }
                    }
                }
                d.deserialize_str(V)
            }
        }
        impl $name {
            /// Every value, in contract order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} {:?}; expected one of: {}",
                        stringify!($name), s, [$($text),+].join(", ")
                    )),
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// Channel of a consent.
    ConsentChannel { Phone = "phone", Sms = "sms", Email = "email", Chat = "chat", Social = "social", Any = "any" }
);
string_enum!(
    /// Purpose of a consent.
    ConsentPurpose { Marketing = "marketing", Service = "service", Survey = "survey" }
);
string_enum!(
    /// Channel of an interaction.
    Channel { Phone = "phone", Email = "email", Chat = "chat", Sms = "sms", Social = "social", Video = "video" }
);
string_enum!(
    /// Direction of an interaction.
    Direction { Inbound = "inbound", Outbound = "outbound" }
);
string_enum!(
    /// Who wrote a message.
    Author { Customer = "customer", Agent = "agent", Bot = "bot" }
);
string_enum!(
    /// How an interaction ended.
    InteractionOutcome {
        Completed = "completed", Abandoned = "abandoned", Voicemail = "voicemail",
        NoAnswer = "no_answer", Busy = "busy", Failed = "failed"
    }
);
string_enum!(
    /// How a customer was identified on an interaction.
    IdentificationMethod { Ani = "ani", Ivr = "ivr", AgentSearch = "agent_search", Verified = "verified" }
);
string_enum!(
    /// Priority of a case.
    Priority { Low = "low", Normal = "normal", High = "high", Urgent = "urgent" }
);
string_enum!(
    /// Who opened a case.
    OpenedBy { Agent = "agent", Rule = "rule" }
);
string_enum!(
    /// Visibility of a case note.
    Visibility { Internal = "internal", Customer = "customer" }
);
string_enum!(
    /// Why a case was voided.
    VoidReason { Prank = "prank", WrongNumber = "wrong_number", Duplicate = "duplicate", Test = "test", Other = "other" }
);
string_enum!(
    /// Channel of a campaign.
    CampaignChannel { Phone = "phone", Email = "email", Sms = "sms", Social = "social", Mixed = "mixed" }
);
string_enum!(
    /// Purpose of a campaign.
    CampaignPurpose { Marketing = "marketing", Service = "service", Survey = "survey", Collections = "collections" }
);
string_enum!(
    /// Channel of a single campaign attempt.
    AttemptChannel { Phone = "phone", Email = "email", Sms = "sms", Social = "social", Chat = "chat" }
);
string_enum!(
    /// Technical result of a campaign attempt.
    AttemptResult {
        Connected = "connected", Busy = "busy", NoAnswer = "no_answer", Voicemail = "voicemail",
        InvalidNumber = "invalid_number", Delivered = "delivered", Bounced = "bounced", Failed = "failed"
    }
);
string_enum!(
    /// Business outcome of a campaign contact.
    ContactOutcome {
        Converted = "converted", Interested = "interested", Declined = "declined",
        CallbackRequested = "callback_requested", DoNotContact = "do_not_contact", WrongPerson = "wrong_person"
    }
);

impl ConsentChannel {
    /// Whether a consent on `self` covers contact on the attempt channel `c`.
    pub fn covers(self, c: AttemptChannel) -> bool {
        matches!(
            (self, c),
            (ConsentChannel::Any, _)
                | (ConsentChannel::Phone, AttemptChannel::Phone)
                | (ConsentChannel::Sms, AttemptChannel::Sms)
                | (ConsentChannel::Email, AttemptChannel::Email)
                | (ConsentChannel::Chat, AttemptChannel::Chat)
                | (ConsentChannel::Social, AttemptChannel::Social)
        )
    }
}

// ---------------------------------------------------------------- customers

/// `customer.registered`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CustomerRegistered {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub identities: Vec<Identity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `customer.profile_updated`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CustomerProfileUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub name: Option<String>,
    /// A `null` value removes that attribute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `customer.identity_added`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerIdentityAdded {
    pub identity: Identity,
    #[serde(default)]
    pub verified: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `customer.identity_removed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerIdentityRemoved {
    pub identity: Identity,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `customer.merged` and `customer.unmerged`; the envelope's `customer_id` is the survivor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerMerge {
    #[schemars(length(min = 1, max = 256))]
    pub merged_customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `consent.granted`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsentGranted {
    pub channel: ConsentChannel,
    pub purpose: ConsentPurpose,
    #[serde(
        default,
        deserialize_with = "crate::quick::optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `consent.revoked`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsentRevoked {
    pub channel: ConsentChannel,
    pub purpose: ConsentPurpose,
    #[serde(flatten)]
    pub extra: Extra,
}

// ------------------------------------------------------------- interactions

/// IVR traversal of a call: menu path and the inputs the caller typed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Ivr {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 256)))]
    pub path: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `interaction.started`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InteractionStarted {
    pub channel: Channel,
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivr: Option<Ivr>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `interaction.message`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InteractionMessage {
    pub author: Author,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub subject: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `interaction.assigned` (the agent is the envelope's `agent_id`)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct InteractionAssigned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub wait_seconds: Option<f64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `interaction.transferred`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct InteractionTransferred {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub to_queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub to_agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tier: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

string_enum!(
    /// Who ended an interaction (`interaction.ended` v2).
    DisconnectedBy { Customer = "customer", Agent = "agent", System = "system" }
);

/// How long each phase of an interaction took, in seconds (`interaction.ended` v2).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct Durations {
    /// Ringing before it was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub ring_seconds: Option<f64>,
    /// Waiting in queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub queue_seconds: Option<f64>,
    /// Talking (or chatting) with an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub talk_seconds: Option<f64>,
    /// On hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub hold_seconds: Option<f64>,
    /// After-call work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub wrapup_seconds: Option<f64>,
    /// Total agent handling time (talk + hold + wrap-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub handle_seconds: Option<f64>,
}

// `remote = "Self"` makes the derived impls inherent functions, so that
// the struct is read from an object only.
crate::quick::object_only_serde!(Durations);

impl Durations {
    pub fn is_empty(&self) -> bool {
        *self == Durations::default()
    }
}

/// `interaction.ended`, version 2 (current): the durations as one structured
/// object, and who disconnected. Version 1 events are upcast to this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InteractionEnded {
    pub outcome: InteractionOutcome,
    #[serde(default, skip_serializing_if = "Durations::is_empty")]
    pub durations: Durations,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub wrapup_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_by: Option<DisconnectedBy>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `interaction.ended`, version 1: flat `talk_seconds` and `handle_seconds`.
/// Its schema is kept unchanged; events of this version are upcast to
/// [`InteractionEnded`] (version 2) when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "InteractionEnded")]
pub struct InteractionEndedV1 {
    pub outcome: InteractionOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub talk_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub handle_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapup_code: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl From<InteractionEndedV1> for InteractionEnded {
    fn from(v1: InteractionEndedV1) -> Self {
        InteractionEnded {
            outcome: v1.outcome,
            durations: Durations {
                talk_seconds: v1.talk_seconds,
                handle_seconds: v1.handle_seconds,
                ..Durations::default()
            },
            wrapup_code: v1.wrapup_code,
            disconnected_by: None,
            extra: v1.extra,
        }
    }
}

/// `interaction.recorded`: a whole finished interaction in one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InteractionRecorded {
    pub channel: Channel,
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<InteractionOutcome>,
    #[serde(
        default,
        deserialize_with = "crate::quick::optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub talk_seconds: Option<f64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `interaction.identified` (the customer is the envelope's `customer_id`)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct InteractionIdentified {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<IdentificationMethod>,
    #[serde(flatten)]
    pub extra: Extra,
}

// -------------------------------------------------------------------- cases

/// `case.opened`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseOpened {
    #[schemars(length(min = 1, max = 256))]
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub subcategory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tier: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub origin_interaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub related: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<OpenedBy>,
    #[serde(
        default,
        deserialize_with = "crate::quick::optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_response_due: Option<DateTime<Utc>>,
    #[serde(
        default,
        deserialize_with = "crate::quick::optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub resolve_due: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl CaseOpened {
    /// `priority`, defaulting to `normal`.
    pub fn priority(&self) -> Priority {
        self.priority.unwrap_or(Priority::Normal)
    }
    /// `tier`, defaulting to 1.
    pub fn tier(&self) -> u32 {
        self.tier.unwrap_or(1)
    }
}

/// Events whose `data` carries nothing required: `case.interaction_linked`,
/// `case.customer_identified`, `case.closed`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Empty {
    #[serde(flatten)]
    pub extra: Extra,
}

/// `case.categorized`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseCategorized {
    #[schemars(length(min = 1, max = 256))]
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub subcategory: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `case.assigned` (the agent is the envelope's `agent_id`)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CaseAssigned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub queue: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `case.escalated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseEscalated {
    #[schemars(range(min = 1))]
    pub to_tier: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub queue: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `case.note_added`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseNoteAdded {
    #[schemars(length(min = 1, max = 65536))]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `case.responded`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CaseResponded {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub interaction_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `case.resolved`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseResolved {
    #[schemars(length(min = 1, max = 16384))]
    pub resolution: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub resolution_code: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `case.reopened`, and the `reason` of campaign status changes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Reason {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `case.voided`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseVoided {
    pub reason: VoidReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub duplicate_of: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------- campaigns

/// `campaign.created`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CampaignCreated {
    #[schemars(length(min = 1, max = 512))]
    pub name: String,
    pub channel: CampaignChannel,
    pub purpose: CampaignPurpose,
    #[serde(
        default,
        deserialize_with = "crate::quick::optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        deserialize_with = "crate::quick::optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_consent: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl CampaignCreated {
    /// `max_attempts`, defaulting to 3.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(3)
    }
    /// `requires_consent`, defaulting to true for marketing campaigns.
    pub fn requires_consent(&self) -> bool {
        self.requires_consent
            .unwrap_or(self.purpose == CampaignPurpose::Marketing)
    }
}

/// `campaign.contact_added`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CampaignContactAdded {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub agent_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `campaign.attempt_made`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CampaignAttemptMade {
    pub channel: AttemptChannel,
    pub result: AttemptResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub interaction_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `campaign.contact_outcome`; `callback_at` is required for `callback_requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend(
    "if" = {"properties": {"outcome": {"const": "callback_requested"}}, "required": ["outcome"]},
    "then" = {"required": ["callback_at"]}
))]
pub struct CampaignContactOutcome {
    pub outcome: ContactOutcome,
    #[serde(
        default,
        deserialize_with = "crate::quick::optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(flatten)]
    pub extra: Extra,
}
