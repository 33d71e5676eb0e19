//! The discrete-event simulation behind [`crate::generate`].
//!
//! Two priority queues drive everything:
//!
//! * the *agenda* holds actions (a day's rolls, a customer's contact, the
//!   next step of an open case or campaign contact...) ordered by time and
//!   creation sequence;
//! * the *outbox* holds events that are built but not yet due, ordered by
//!   publish time and sequence. Before the action at time `t` runs, every
//!   event due by `t` is emitted, so the output is sorted by publish time.
//!
//! Short conversations (a call, a chat) are planned whole and put in the
//! outbox at once; long-lived things (cases, campaign contacts) are state
//! machines that come back to the agenda for each step. A late event gets a
//! publish time after its `occurred_at`, and a *hold* on its stream makes
//! every later event of that stream wait for it, so streams keep their order.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Utc, Weekday};
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::people::{self, CULTURES};
use crate::text::{self, fill, Slots, TOPICS};
use crate::{DemoConfig, Rng8, Summary};

const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const NONE: u32 = u32::MAX;
const NEVER: i64 = i64::MAX;

// Interaction channels; an interaction's code is `number * 8 + channel`.
const CH_PHONE: u64 = 0;
const CH_EMAIL: u64 = 1;
const CH_CHAT: u64 = 2;
const CH_SMS: u64 = 3;
const CH_SOCIAL: u64 = 4;
const CH_VIDEO: u64 = 5;
const CH_NAMES: [&str; 6] = ["phone", "email", "chat", "sms", "social", "video"];
const CH_PREFIX: [&str; 6] = ["call", "mail", "chat", "sms", "social", "video"];

const CONSENT_CH: [&str; 6] = ["phone", "sms", "email", "chat", "social", "any"];
const PURPOSES: [&str; 3] = ["marketing", "service", "survey"];

const SUPPORT_EMAIL: &str = "support@acmeconnect.example";
const NOREPLY_EMAIL: &str = "no-reply@acmeconnect.example";
const OFFERS_EMAIL: &str = "offers@acmeconnect.example";
const SOCIAL_ACCOUNT: &str = "@AcmeConnect";

// First occurrences that are forced, so small histories still cover the
// whole catalog (see `Sim::want`).
const F_CATEGORIZE: u32 = 0;
const F_ESCALATE: u32 = 1;
const F_ESCALATE3: u32 = 2;
const F_REOPEN: u32 = 3;
const F_FOLLOWUP: u32 = 4;
const F_DUPCASE: u32 = 5;
const F_TWOCASES: u32 = 6;
const F_TRANSFER: u32 = 7;
const F_CALLMSG: u32 = 8;
const F_LATE_ID: u32 = 9;
const F_REVOKE_LATE: u32 = 10;
const F_PROFILE: u32 = 11;
const F_ID_ADD: u32 = 12;
const F_ID_REMOVE: u32 = 13;
const F_GRANT: u32 = 14;
const F_REVOKE: u32 = 15;
const F_PRANK: u32 = 16;
const F_WRONG: u32 = 17;
const F_OTHERVOID: u32 = 18;
const F_CALLBACK: u32 = 19;
const F_DNC: u32 = 20;
const F_WRONG_PERSON: u32 = 21;
const F_CONVERTED: u32 = 22;
const F_ABANDON: u32 = 23;
const F_VIOLATION: u32 = 24;
const F_CALLER_NOT_CUSTOMER: u32 = 25;
const F_NEVER_ID: u32 = 26;
const F_INVALID: u32 = 27;
const F_INTERESTED: u32 = 28;
const F_BOUNCE: u32 = 29;
const F_CASE_FIRST: u32 = 30;
const F_REASSIGN: u32 = 31;

/// A consent as the generator tracks it (by `occurred_at`).
#[derive(Clone, Copy)]
struct Consent {
    ch: u8,
    purpose: u8,
    granted: i64,
    expires: i64,
    revoked: i64,
}

/// Everything kept per customer: small, fixed, plus a few consents.
struct Cust {
    culture: u8,
    female: bool,
    first: u8,
    last: u8,
    /// Second surname (Spanish names), or 255.
    last2: u8,
    /// How the name is written (script, order).
    style: u8,
    /// How a duplicate record misspells the name (0: as the original).
    variant: u8,
    city: u8,
    street: u8,
    house: u16,
    plan: u8,
    segment: u8,
    activity: u8,
    birth: u16,
    since: u16,
    card: u16,
    /// Registration time (NEVER: not yet).
    reg_at: i64,
    /// Phone slots in use (bits 0..4) and email slots (bits 0..3).
    phones: u8,
    emails: u8,
    /// Identity slots keyed on `owner` (phones bits 0..4, emails bits 4..8).
    share: u8,
    owner: u32,
    /// 0 ordinary, 1 duplicate record of `owner`, 2 household member of `owner`.
    role: u8,
    has_chat: bool,
    has_social: bool,
    has_loyalty: bool,
    has_card: bool,
    /// Registered by the migration on day one.
    initial: bool,
    /// Surname taken at marriage (display only), or 255.
    married: u8,
    merged_into: u32,
    open_case: u32,
    consents: Vec<Consent>,
    /// Latest `occurred_at` put in this customer's stream.
    last_occ: i64,
}

/// An event being built.
#[derive(Default)]
struct Ev {
    ty: &'static str,
    t: i64,
    src: &'static str,
    cust: Option<u32>,
    ix: Option<u64>,
    case: Option<u64>,
    camp: Option<u16>,
    agent: Option<u32>,
    corr: Option<String>,
    cause: Option<String>,
    data: Value,
}

struct Out {
    publish: i64,
    seq: u64,
    occ: i64,
    ty: &'static str,
    value: Value,
}

impl PartialEq for Out {
    fn eq(&self, o: &Self) -> bool {
        (self.publish, self.seq) == (o.publish, o.seq)
    }
}
impl Eq for Out {}
impl PartialOrd for Out {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Out {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.publish, self.seq).cmp(&(o.publish, o.seq))
    }
}

struct Item {
    t: i64,
    seq: u64,
    act: Act,
}
impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.t, self.seq).cmp(&(o.t, o.seq))
    }
}

#[derive(Clone, Copy)]
enum Change {
    Profile,
    IdentityAdd,
    IdentityRemove,
    Grant,
    Revoke,
}

#[derive(Clone, Copy, PartialEq)]
enum Stranger {
    Prospect,
    WrongNumber,
    Prank,
    Anonymous,
}

enum Act {
    Day(u32),
    Migrate(u32),
    Register(u32),
    Contact(u32),
    Notify(u32),
    Change(u32, Change),
    Stranger(Stranger),
    TestCase,
    Merge {
        survivor: u32,
        merged: u32,
        by_agent: bool,
    },
    Unmerge {
        survivor: u32,
        merged: u32,
    },
    Case(Box<CaseSt>),
    CampCreate(u16),
    CampUpload(u16),
    CampPause(u16, bool),
    CampComplete(u16),
    CampContact(Box<ContactSt>, CStep),
}

/// Steps of a campaign contact.
#[derive(Clone, Copy)]
enum CStep {
    Add,
    Attempt,
    Reassign,
    Revoke { publish: i64 },
    Outcome { kind: u8, callback: i64 },
}

struct ContactSt {
    camp: u16,
    c: u32,
    agent: u32,
    attempts: u8,
    phone_attempts: u8,
    last_day: i64,
    revoke_late: bool,
    done: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Step {
    Open,
    Assign(u32),
    Categorize,
    Identify,
    Note,
    Respond(bool),
    FollowUp,
    Escalate(u8),
    Resolve,
    Reopen,
    Close,
    Void,
}

/// An open case: what it is about and its remaining planned steps.
struct CaseSt {
    no: u64,
    c: Option<u32>,
    known: bool,
    topic: u8,
    prio: u8,
    tier: u8,
    agent: u32,
    origin: Option<u64>,
    channel: u64,
    reply: Option<(&'static str, String)>,
    corr: String,
    last: Option<String>,
    opened_at: i64,
    due_first: i64,
    due_resolve: i64,
    slot_seed: u64,
    void: u8,
    dup_of: u64,
    by_rule: bool,
    retried_response: bool,
    steps: VecDeque<(i64, Step)>,
}

const VOID_PRANK: u8 = 1;
const VOID_WRONG: u8 = 2;
const VOID_DUP: u8 = 3;
const VOID_TEST: u8 = 4;
const VOID_OTHER: u8 = 5;

/// A campaign's definition.
struct CampDef {
    slug: &'static str,
    name: &'static str,
    channel: &'static str,
    purpose: &'static str,
    start_f: f64,
    end_f: f64,
    max_attempts: u8,
    requires: Option<bool>,
    share: f64,
    pause: Option<(f64, f64, &'static str, &'static str)>,
    consent_purpose: u8,
    queue: &'static str,
    src: &'static str,
    complete_reason: &'static str,
}

const CAMPAIGNS: &[CampDef] = &[
    CampDef {
        slug: "autumn-fibre-upgrade",
        name: "Autumn Fibre Upgrade",
        channel: "phone",
        purpose: "marketing",
        start_f: 0.08,
        end_f: 0.85,
        max_attempts: 4,
        requires: None,
        share: 0.2,
        pause: Some((0.38, 0.48, "dialer maintenance", "maintenance finished")),
        consent_purpose: 0,
        queue: "outbound-sales",
        src: "dialer",
        complete_reason: "end date reached",
    },
    CampDef {
        slug: "winter-deals",
        name: "Winter Deals",
        channel: "email",
        purpose: "marketing",
        start_f: 0.45,
        end_f: 1.25,
        max_attempts: 2,
        requires: None,
        share: 0.35,
        pause: None,
        consent_purpose: 0,
        queue: "marketing",
        src: "marketing-hub",
        complete_reason: "end date reached",
    },
    CampDef {
        slug: "nps-survey-q4",
        name: "Customer Satisfaction Survey Q4",
        channel: "sms",
        purpose: "survey",
        start_f: 0.2,
        end_f: 0.6,
        max_attempts: 2,
        requires: Some(true),
        share: 0.5,
        pause: None,
        consent_purpose: 2,
        queue: "surveys",
        src: "sms-gateway",
        complete_reason: "target sample size reached",
    },
    CampDef {
        slug: "overdue-balance",
        name: "Overdue Balance Reminder",
        channel: "mixed",
        purpose: "collections",
        start_f: 0.05,
        end_f: 1.5,
        max_attempts: 5,
        requires: Some(false),
        share: 0.03,
        pause: Some((
            0.6,
            0.66,
            "complaint review by compliance",
            "review completed",
        )),
        consent_purpose: 1,
        queue: "collections",
        src: "dialer",
        complete_reason: "end date reached",
    },
    CampDef {
        slug: "router-recall",
        name: "AC-Hub 3 Safety Recall",
        channel: "phone",
        purpose: "service",
        start_f: 0.3,
        end_f: 0.9,
        max_attempts: 3,
        requires: Some(false),
        share: 0.02,
        pause: None,
        consent_purpose: 1,
        queue: "outbound-service",
        src: "dialer",
        complete_reason: "all affected customers contacted",
    },
    CampDef {
        slug: "loyalty-launch",
        name: "Loyalty Rewards Launch",
        channel: "social",
        purpose: "marketing",
        start_f: 0.6,
        end_f: 0.95,
        max_attempts: 1,
        requires: Some(true),
        share: 0.05,
        pause: None,
        consent_purpose: 0,
        queue: "social-care",
        src: "social-hub",
        complete_reason: "end date reached",
    },
];

struct Camp {
    starts: i64,
    ends: i64,
    pause: Option<(i64, i64)>,
}

/// Hourly weights of inbound traffic (hour of day, UTC).
const HOURLY: [u32; 24] = [
    2, 1, 1, 1, 1, 2, 4, 10, 22, 30, 32, 30, 27, 27, 29, 29, 27, 24, 20, 16, 12, 9, 6, 4,
];

/// Runs the simulation; `emit` returns false to stop early.
pub(crate) fn run(cfg: &DemoConfig, emit: &mut dyn FnMut(Value) -> bool) -> Summary {
    let mut sim = Sim::new(cfg, emit);
    sim.init();
    while let Some(Reverse(item)) = sim.agenda.pop() {
        if item.t >= sim.end || sim.stopped {
            break;
        }
        sim.flush(item.t);
        sim.now = item.t;
        sim.act(item.act);
    }
    sim.flush(i64::MAX);
    sim.finish()
}

struct Sim<'e> {
    seed: u64,
    rng: Rng8,
    ids: Rng8,
    start: i64,
    end: i64,
    days: u32,
    now: i64,
    seq: u64,
    agenda: BinaryHeap<Reverse<Item>>,
    out: BinaryHeap<Reverse<Out>>,
    /// Streams waiting for a late event: publish floor and occurred floor.
    holds: BTreeMap<(u8, u64), (i64, i64)>,
    emit: &'e mut dyn FnMut(Value) -> bool,
    /// The consumer asked to stop.
    stopped: bool,
    sum: Summary,
    by_type: BTreeMap<&'static str, u64>,
    max_occ: i64,
    min_occ: i64,
    custs: Vec<Cust>,
    agents: [u32; 3],
    camps: Vec<Camp>,
    next_ix: u64,
    next_case: u64,
    next_stranger: u64,
    forced: u64,
    hourly_total: u32,
    /// Power of ten above every identity key, for short unique suffixes.
    space: u64,
}

fn family(ty: &str) -> u8 {
    match ty.as_bytes()[1] {
        b'u' | b'o' => 0, // customer., consent.
        b'n' => 1,        // interaction.
        b'a' => {
            if ty.as_bytes()[2] == b's' {
                2 // case.
            } else {
                3 // campaign.
            }
        }
        _ => 0,
    }
}

fn cust_id(c: u32) -> String {
    format!("cust-{:07}", c + 1)
}
fn ix_id(code: u64) -> String {
    format!("{}-{:07}", CH_PREFIX[(code % 8) as usize], code / 8)
}
fn case_id(no: u64) -> String {
    format!("case-{no:06}")
}
fn camp_id(k: u16) -> String {
    format!("camp-{:02}-{}", k + 1, CAMPAIGNS[k as usize].slug)
}
fn agent_id(a: u32) -> String {
    format!("agt-{:04}", a + 1)
}
fn ts(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("time in range")
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How a source writes its timestamps: UTC offset in minutes, milliseconds.
fn time_style(src: &str) -> (i32, bool) {
    match src {
        "pbx-east" => (-4 * 60, true),
        "pbx-eu" => (2 * 60, true),
        "pbx-apac" => (8 * 60, true),
        "dialer" | "ivr-platform" => (0, true),
        "mail-gateway" => (60, false),
        _ => (0, false),
    }
}

fn fmt_occ(ms: i64, src: &str) -> String {
    let (off, millis) = time_style(src);
    let dt = DateTime::<Utc>::from_timestamp_millis(ms).expect("time in range");
    let off = FixedOffset::east_opt(off * 60).expect("offset");
    dt.with_timezone(&off).to_rfc3339_opts(
        if millis {
            SecondsFormat::Millis
        } else {
            SecondsFormat::AutoSi
        },
        true,
    )
}

fn obj(v: &mut Value) -> &mut Map<String, Value> {
    v.as_object_mut().expect("data is an object")
}

fn identity(kind: &str, value: String) -> Value {
    json!({ "kind": kind, "value": value })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Russian surnames take a feminine form.
fn ru_feminine(display: &str, ascii: &str) -> (String, String) {
    if let Some(stem) = display.strip_suffix("ский") {
        (
            format!("{stem}ская"),
            format!("{}aya", ascii.trim_end_matches('y')),
        )
    } else {
        (format!("{display}а"), format!("{ascii}a"))
    }
}

impl<'e> Sim<'e> {
    fn new(cfg: &DemoConfig, emit: &'e mut dyn FnMut(Value) -> bool) -> Self {
        let start = cfg.start.timestamp_millis();
        let n = cfg.customers as u32;
        let total = (n / 20).clamp(12, 9000);
        let t1 = total * 7 / 10;
        let t2 = total * 9 / 10;
        Sim {
            seed: cfg.seed,
            rng: Rng8::seed_from_u64(cfg.seed),
            ids: Rng8::seed_from_u64(cfg.seed ^ 0x9e37_79b9_7f4a_7c15),
            start,
            end: start + i64::from(cfg.days) * DAY,
            days: cfg.days,
            now: start,
            seq: 0,
            agenda: BinaryHeap::new(),
            out: BinaryHeap::new(),
            holds: BTreeMap::new(),
            emit,
            stopped: false,
            sum: Summary {
                customers: cfg.customers,
                ..Summary::default()
            },
            by_type: BTreeMap::new(),
            max_occ: i64::MIN,
            min_occ: i64::MAX,
            custs: Vec::with_capacity(cfg.customers),
            agents: [t1, t2, total],
            camps: Vec::new(),
            next_ix: 1,
            next_case: 1,
            next_stranger: 0,
            forced: 0,
            hourly_total: HOURLY.iter().sum(),
            space: {
                let mut s = 1000u64;
                while s < u64::from(n) * 8 {
                    s *= 10;
                }
                s
            },
        }
    }

    // ------------------------------------------------------------ plumbing

    fn schedule(&mut self, t: i64, act: Act) {
        self.seq += 1;
        self.agenda.push(Reverse(Item {
            t,
            seq: self.seq,
            act,
        }));
    }

    fn flush(&mut self, upto: i64) {
        while let Some(Reverse(top)) = self.out.peek() {
            if top.publish > upto || self.stopped {
                break;
            }
            let Reverse(o) = self.out.pop().expect("peeked");
            self.sum.events += 1;
            *self.by_type.entry(o.ty).or_insert(0) += 1;
            if o.occ < self.max_occ {
                self.sum.late_events += 1;
            } else {
                self.max_occ = o.occ;
            }
            if !(self.emit)(o.value) {
                self.stopped = true;
            }
        }
    }

    fn finish(mut self) -> Summary {
        for (ty, n) in &self.by_type {
            let n = *n;
            match family(ty) {
                0 if ty.starts_with("consent") => self.sum.consent_events += n,
                0 => self.sum.customer_events += n,
                1 => self.sum.interaction_events += n,
                2 => self.sum.case_events += n,
                _ => self.sum.campaign_events += n,
            }
            self.sum.by_type.insert(ty.to_string(), n);
        }
        let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        self.sum.interactions = get(&self.sum.by_type, "interaction.started")
            + get(&self.sum.by_type, "interaction.recorded");
        self.sum.cases = get(&self.sum.by_type, "case.opened");
        self.sum.campaigns = get(&self.sum.by_type, "campaign.created");
        self.sum.registered = get(&self.sum.by_type, "customer.registered");
        if self.sum.events > 0 {
            self.sum.first_occurred_at = DateTime::<Utc>::from_timestamp_millis(self.min_occ);
            self.sum.last_occurred_at = DateTime::<Utc>::from_timestamp_millis(self.max_occ);
        }
        self.sum
    }

    fn uuid(&mut self) -> String {
        let a: u64 = self.ids.random();
        let b: u64 = self.ids.random();
        let a = (a & !0xf000) | 0x4000;
        let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    fn corr(&mut self) -> String {
        let a: u64 = self.ids.random();
        let b: u64 = self.ids.random();
        format!("trace-{a:016x}{b:016x}")
    }

    /// Queues an event, `lag` ms after it occurred. Returns its event_id.
    fn push(&mut self, mut ev: Ev, lag: i64) -> String {
        let id = self.uuid();
        let fam = family(ev.ty);
        let key = match fam {
            0 => (0, u64::from(ev.cust.expect("customer stream"))),
            1 => (1, ev.ix.expect("interaction stream")),
            2 => (2, ev.case.expect("case stream")),
            _ => (3, u64::from(ev.camp.expect("campaign stream"))),
        };
        if fam == 0 && lag > 0 {
            let c = &self.custs[key.1 as usize];
            ev.t = ev.t.max(c.last_occ);
        }
        let mut publish = ev.t + lag.max(0);
        if let Some(&(p, o)) = self.holds.get(&key) {
            if publish < p {
                publish = p;
                ev.t = ev.t.max(o);
            }
        }
        if ev.t >= self.end {
            return id;
        }
        if lag > 0 {
            self.holds.insert(key, (publish, ev.t));
        }
        if fam == 0 {
            let c = &mut self.custs[key.1 as usize];
            c.last_occ = c.last_occ.max(ev.t);
        }
        if ev.t < self.min_occ {
            self.min_occ = ev.t;
        }
        self.enrich(&mut ev);
        let (occ, ty) = (ev.t, ev.ty);
        let value = Self::to_value(ev, &id);
        self.seq += 1;
        self.out.push(Reverse(Out {
            publish,
            seq: self.seq,
            occ,
            ty,
            value,
        }));
        id
    }

    /// Moves work planned at night into the morning: 20:00-10:00 is
    /// squeezed into 08:00-10:00. Monotone and never earlier
    /// (`t <= office_hours(t)`), so planned steps keep their order.
    fn office_hours(&self, t: i64) -> i64 {
        let day = self.day_start(t);
        let h = t - day;
        if h < 10 * HOUR {
            // 14 hours since 20:00 yesterday, into 2.
            day + 8 * HOUR + (h + 4 * HOUR) / 7
        } else if h >= 20 * HOUR {
            day + DAY + 8 * HOUR + (h - 20 * HOUR) / 7
        } else {
            t
        }
    }

    /// The details systems add to an event beyond what the contract names
    /// (kept and passed through by the ledger): routing, sentiment, dialer
    /// and consent evidence.
    fn enrich(&mut self, ev: &mut Ev) {
        let Some(d) = ev.data.as_object_mut() else {
            return;
        };
        let r: u64 = self.rng.random();
        let f = (r % 1000) as f64 / 1000.0;
        match ev.ty {
            "interaction.assigned" => {
                let queue = d
                    .get("queue")
                    .and_then(Value::as_str)
                    .unwrap_or("general")
                    .to_string();
                let agent = ev.agent.unwrap_or(0);
                d.insert(
                    "team".into(),
                    json!(format!("{queue}-team-{}", agent % 4 + 1)),
                );
                d.insert(
                    "routing".into(),
                    json!(["skills_based", "longest_idle_agent", "sticky_agent"][(r % 3) as usize]),
                );
                d.insert("position_in_queue".into(), json!(r % 17 + 1));
                d.insert(
                    "agent_display_name".into(),
                    json!(format!(
                        "{} {}.",
                        Self::agent_name(agent),
                        (b'A' + (agent % 26) as u8) as char
                    )),
                );
            }
            "interaction.started" if d.get("channel").and_then(Value::as_str) == Some("phone") => {
                let presentation = if d.contains_key("from") {
                    "allowed"
                } else {
                    "restricted"
                };
                d.insert("caller_info".into(), json!({ "presentation": presentation, "line_type": (["mobile", "landline", "voip"][(r % 3) as usize]), "codec": (["G.711", "G.722", "Opus"][(r >> 8) as usize % 3]), "call_uuid": format!("{:016x}", r) }));
            }
            "interaction.identified" => {
                d.insert("confidence".into(), json!(0.75 + 0.25 * f));
                d.insert("candidates".into(), json!(r % 3 + 1));
                d.insert("lookup_ms".into(), json!(r % 280 + 12));
            }
            "interaction.ended" => {
                if d.get("outcome").and_then(Value::as_str) == Some("completed") {
                    let label = if f < 0.2 {
                        "negative"
                    } else if f < 0.75 {
                        "neutral"
                    } else {
                        "positive"
                    };
                    d.insert("sentiment".into(), json!({ "score": ((f * 2.0 - 1.0) * 100.0).round() / 100.0, "label": label }));
                    d.insert("after_call_work_seconds".into(), json!(r % 150 + 10));
                    d.insert("survey_offered".into(), json!(r.is_multiple_of(3)));
                } else {
                    d.insert(
                        "disconnect_reason".into(),
                        json!(
                            ["caller_hangup", "no_agent_available", "network", "timeout"]
                                [(r % 4) as usize]
                        ),
                    );
                }
            }
            "interaction.message" => {
                let chars = d
                    .get("text")
                    .and_then(Value::as_str)
                    .map(|t| t.chars().count())
                    .unwrap_or(0);
                d.insert("message_id".into(), json!(format!("msg-{:012x}", r >> 16)));
                d.insert("chars".into(), json!(chars));
                if matches!(ev.src, "chat-platform" | "social-hub" | "sms-gateway") {
                    let status = if r.is_multiple_of(5) {
                        "delivered"
                    } else {
                        "read"
                    };
                    d.insert(
                        "delivery".into(),
                        json!({ "status": status, "at": ts(ev.t + (r % 40_000) as i64) }),
                    );
                }
            }
            "case.assigned" => {
                let queue = d
                    .get("queue")
                    .and_then(Value::as_str)
                    .unwrap_or("general")
                    .to_string();
                d.insert(
                    "assigned_by".into(),
                    json!(if r.is_multiple_of(4) {
                        "supervisor"
                    } else {
                        "routing-engine"
                    }),
                );
                d.insert(
                    "routing_rule".into(),
                    json!(format!("RR-{queue}-{}", r % 9 + 1)),
                );
                d.insert("agent_open_cases".into(), json!(r % 23 + 1));
            }
            "case.closed" if ev.src == "case-rules" => {
                d.insert(
                    "rule".into(),
                    json!("auto-close 48h after resolution without customer reply"),
                );
            }
            "case.responded" => {
                d.insert(
                    "template".into(),
                    json!(format!("tpl-response-{}", r % 40 + 1)),
                );
            }
            "case.escalated" | "case.resolved" | "case.reopened" | "case.note_added" => {
                d.insert("time_spent_minutes".into(), json!(r % 45 + 2));
            }
            "consent.granted" | "consent.revoked" => {
                let evidence = if ev.src == "crm-migration" {
                    json!({ "legacy_consent_id": format!("LC-{:08}", r % 100_000_000), "captured_on": format!("20{:02}-{:02}-{:02}", 18 + r % 8, r % 12 + 1, r % 28 + 1) })
                } else if ev.src == "crm-ui" || ev.src == "dialer" {
                    json!({ "recording_id": format!("rec-consent-{:010x}", r >> 24), "script": "CONSENT-V4" })
                } else {
                    json!({ "ip": format!("203.0.113.{}", r % 250 + 2), "form": (["signup-v3", "preference-centre", "app-settings"][(r % 3) as usize]), "user_agent_hash": format!("{:016x}", r) })
                };
                d.insert("evidence".into(), evidence);
            }
            "campaign.attempt_made" => {
                if d.get("channel").and_then(Value::as_str) == Some("phone") {
                    d.insert("dialer".into(), json!({ "session": format!("ds-{:08x}", r >> 32), "amd": (["human", "machine", "unknown"][(r % 3) as usize]), "list_position": r % 5000, "pacing_ratio": 1.2 + (r % 8) as f64 / 10.0 }));
                } else {
                    d.insert("provider_message_id".into(), json!(format!("pm-{r:020}")));
                }
            }
            "campaign.contact_added" => {
                d.insert("propensity".into(), json!((f * 100.0).round() / 100.0));
                d.insert(
                    "segment".into(),
                    json!(["value", "mid", "at_risk", "new"][(r % 4) as usize]),
                );
            }
            "campaign.contact_outcome" => {
                d.insert(
                    "disposition_code".into(),
                    json!(format!("DC-{:02}", r % 40 + 1)),
                );
            }
            _ => {}
        }
    }

    fn to_value(ev: Ev, id: &str) -> Value {
        let mut m = Map::new();
        m.insert("event_id".into(), Value::String(id.to_string()));
        m.insert("type".into(), Value::String(ev.ty.to_string()));
        if !matches!(ev.src, "crm-migration" | "bpo-import" | "legacy-import") {
            m.insert("version".into(), json!(1));
        }
        m.insert("occurred_at".into(), Value::String(fmt_occ(ev.t, ev.src)));
        m.insert("source".into(), Value::String(ev.src.to_string()));
        if let Some(c) = ev.cust {
            m.insert("customer_id".into(), Value::String(cust_id(c)));
        }
        if let Some(i) = ev.ix {
            m.insert("interaction_id".into(), Value::String(ix_id(i)));
        }
        if let Some(k) = ev.case {
            m.insert("case_id".into(), Value::String(case_id(k)));
        }
        if let Some(k) = ev.camp {
            m.insert("campaign_id".into(), Value::String(camp_id(k)));
        }
        if let Some(a) = ev.agent {
            m.insert("agent_id".into(), Value::String(agent_id(a)));
        }
        if let Some(c) = ev.corr {
            m.insert("correlation_id".into(), Value::String(c));
        }
        if let Some(c) = ev.cause {
            m.insert("causation_id".into(), Value::String(c));
        }
        let data = if ev.data.is_null() {
            Value::Object(Map::new())
        } else {
            ev.data
        };
        m.insert("data".into(), data);
        Value::Object(m)
    }

    // -------------------------------------------------------------- random

    fn p(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    /// True the first time `flag` is asked for, then with probability `p`:
    /// rare situations show up even in small histories.
    fn want(&mut self, flag: u32, p: f64) -> bool {
        if self.forced & (1 << flag) == 0 {
            self.forced |= 1 << flag;
            true
        } else {
            self.p(p)
        }
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..hi)
        }
    }

    fn secs(&mut self, lo: i64, hi: i64) -> i64 {
        self.range(lo, hi) * SEC
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn weighted(&mut self, w: &[u32]) -> usize {
        let total: u32 = w.iter().sum();
        let mut r = self.rng.random_range(0..total.max(1));
        for (i, &x) in w.iter().enumerate() {
            if r < x {
                return i;
            }
            r -= x;
        }
        w.len() - 1
    }

    fn frac(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Milliseconds of jitter, for sources that stamp milliseconds.
    fn jit(&mut self) -> i64 {
        self.range(0, 1000)
    }

    fn day_start(&self, t: i64) -> i64 {
        t - (t - self.start).rem_euclid(DAY)
    }

    fn weekend(&self, t: i64) -> bool {
        let d = DateTime::<Utc>::from_timestamp_millis(t)
            .expect("time")
            .weekday();
        matches!(d, Weekday::Sat | Weekday::Sun)
    }

    /// A time in the day starting at `day`, following the traffic curve.
    fn time_in_day(&mut self, day: i64) -> i64 {
        let mut r = self.rng.random_range(0..self.hourly_total);
        let mut h = 0;
        for (i, &w) in HOURLY.iter().enumerate() {
            if r < w {
                h = i;
                break;
            }
            r -= w;
        }
        day + h as i64 * HOUR + self.secs(0, 3600)
    }

    /// A time in office hours (08:00-19:00) of the day starting at `day`.
    fn office_time(&mut self, day: i64) -> i64 {
        day + 8 * HOUR + self.secs(0, 11 * 3600)
    }

    fn agent(&mut self, tier: u8) -> u32 {
        let (lo, hi) = match tier {
            1 => (0, self.agents[0]),
            2 => (self.agents[0], self.agents[1]),
            _ => (self.agents[1], self.agents[2]),
        };
        self.rng.random_range(lo..hi.max(lo + 1))
    }

    fn agent_name(a: u32) -> &'static str {
        text::AGENT_NAMES[a as usize % text::AGENT_NAMES.len()]
    }

    // ------------------------------------------------------------- people

    fn new_cust(&mut self) -> Cust {
        let culture = people::pick_culture(&mut self.rng);
        let cu = &CULTURES[culture as usize];
        let female = self.rng.random_bool(0.5);
        let first = self.rng.random_range(
            0..if female {
                cu.female.len()
            } else {
                cu.male.len()
            },
        ) as u8;
        let last = self.rng.random_range(0..cu.last.len()) as u8;
        let last2 = if cu.code.starts_with("es") && self.p(0.6) {
            self.rng.random_range(0..cu.last.len()) as u8
        } else {
            255
        };
        let activity = self.weighted(&[60, 30, 10]) as u8;
        let mut phones = 1u8;
        if self.p(0.35) {
            phones |= 2;
        }
        let mut emails = 0u8;
        if self.p(0.9) {
            emails |= 1;
        }
        Cust {
            culture,
            female,
            first,
            last,
            last2,
            style: self.rng.random_range(0..4),
            variant: 0,
            city: self.rng.random_range(0..cu.cities.len()) as u8,
            street: self.rng.random_range(0..cu.streets.len()) as u8,
            house: self.rng.random_range(1..180),
            plan: self.rng.random_range(0..text::PLANS_OFFERED.len()) as u8,
            segment: self.weighted(&[80, 12, 8]) as u8,
            activity,
            birth: self.rng.random_range(1945..2006),
            since: self.rng.random_range(2008..2027),
            card: self.rng.random_range(0..10_000),
            reg_at: NEVER,
            phones,
            emails,
            share: 0,
            owner: NONE,
            role: 0,
            has_chat: self.p(0.3),
            has_social: self.p(0.3),
            has_loyalty: self.p(0.15),
            has_card: self.p(0.4),
            initial: false,
            married: 255,
            merged_into: NONE,
            open_case: NONE,
            consents: Vec::new(),
            last_occ: i64::MIN,
        }
    }

    fn first_name(&self, c: u32) -> (&'static str, &'static str) {
        let x = &self.custs[c as usize];
        let cu = &CULTURES[x.culture as usize];
        let n = if x.female {
            cu.female[x.first as usize]
        } else {
            cu.male[x.first as usize]
        };
        (n.display, n.ascii)
    }

    fn last_name(&self, c: u32) -> (String, String) {
        let x = &self.custs[c as usize];
        let cu = &CULTURES[x.culture as usize];
        let n = cu.last[x.last as usize];
        if cu.code == "ru-RU" && x.female {
            return ru_feminine(n.display, n.ascii);
        }
        (n.display.to_string(), n.ascii.to_string())
    }

    /// The name as this record shows it.
    fn name(&self, c: u32) -> String {
        let x = &self.custs[c as usize];
        let cu = &CULTURES[x.culture as usize];
        let (fd, fa) = self.first_name(c);
        let (ld, la) = if x.married != 255 {
            let n = cu.last[x.married as usize];
            if cu.code == "ru-RU" {
                ru_feminine(n.display, n.ascii)
            } else {
                (n.display.to_string(), n.ascii.to_string())
            }
        } else {
            self.last_name(c)
        };
        let base = match cu.code {
            "ru-RU" => match x.style {
                0 | 1 => format!("{} {}", capitalize(fa), capitalize(&la)),
                2 => format!("{fd} {ld}"),
                _ => format!("{ld} {fd}"),
            },
            "zh-CN" => match x.style {
                0 => format!("{} {}", capitalize(&la), capitalize(fa)),
                1 => format!("{} {}", capitalize(fa), capitalize(&la)),
                2 => format!("{ld}{fd}"),
                _ => format!("{} {} ({ld}{fd})", capitalize(&la), capitalize(fa)),
            },
            _ => {
                if x.last2 != 255 {
                    format!("{fd} {ld} {}", cu.last[x.last2 as usize].display)
                } else {
                    format!("{fd} {ld}")
                }
            }
        };
        match x.variant {
            1 => {
                // Accents and scripts dropped by a web form.
                format!("{} {}", capitalize(fa), capitalize(&la))
            }
            2 => base.to_uppercase(),
            3 => format!(
                "{}. {}",
                fa.chars().next().unwrap_or('x').to_ascii_uppercase(),
                ld
            ),
            _ => base,
        }
    }

    /// Canonical phone of slot `slot` (0 primary mobile, 1 landline, 2-3 added).
    fn phone(&self, c: u32, slot: u8) -> String {
        let x = &self.custs[c as usize];
        let keyed = if x.share & (1 << slot) != 0 {
            x.owner
        } else {
            c
        };
        let kc = &self.custs[keyed as usize];
        let cu = &CULTURES[kc.culture as usize];
        let plan = if slot == 1 { cu.plans[1] } else { cu.plans[0] };
        people::phone_e164(plan, u64::from(keyed) * 8 + u64::from(slot), self.seed)
    }

    fn email(&self, c: u32, slot: u8) -> String {
        let x = &self.custs[c as usize];
        let keyed = if x.share & (16 << slot) != 0 {
            x.owner
        } else {
            c
        };
        let kc = &self.custs[keyed as usize];
        let cu = &CULTURES[kc.culture as usize];
        let (_, fa) = self.first_name(keyed);
        let (_, la) = self.last_name(keyed);
        people::email(
            fa,
            &la,
            cu.domains,
            u64::from(keyed) * 8 + u64::from(slot),
            self.space,
            self.seed,
        )
    }

    fn primary_email_slot(&self, c: u32) -> Option<u8> {
        let e = self.custs[c as usize].emails;
        (0..3).find(|s| e & (1 << s) != 0)
    }

    fn some_phone(&mut self, c: u32) -> Option<String> {
        let p = self.custs[c as usize].phones;
        let slots: Vec<u8> = (0..4).filter(|s| p & (1 << s) != 0).collect();
        if slots.is_empty() {
            return None;
        }
        let s = if slots.len() > 1 && self.p(0.3) {
            slots[1]
        } else {
            slots[0]
        };
        Some(self.phone(c, s))
    }

    fn some_email(&mut self, c: u32) -> Option<String> {
        self.primary_email_slot(c).map(|s| self.email(c, s))
    }

    fn messy_phone(&mut self, e164: &str) -> String {
        people::messy_phone(&mut self.rng, e164)
    }

    fn messy_email(&mut self, e: &str) -> String {
        people::messy_email(&mut self.rng, e)
    }

    fn account(&self, c: u32) -> String {
        people::account(u64::from(c), self.seed)
    }

    fn card(&self, c: u32) -> String {
        let x = &self.custs[c as usize];
        let brand = ["VISA", "MC", "VISA", "AMEX", "MC"][c as usize % 5];
        format!("{brand} ****{:04}", x.card)
    }

    fn chat_handle(&self, c: u32) -> String {
        let (_, fa) = self.first_name(c);
        let (_, la) = self.last_name(c);
        people::chat_handle(fa, &la, u64::from(c), self.space, self.seed)
    }

    fn social_handle(&self, c: u32) -> String {
        let (_, fa) = self.first_name(c);
        let (_, la) = self.last_name(c);
        people::social_handle(fa, &la, u64::from(c), self.space, self.seed)
    }

    fn country(&self, c: u32) -> &'static str {
        CULTURES[self.custs[c as usize].culture as usize].country
    }

    fn pbx(&self, c: Option<u32>) -> &'static str {
        match c {
            Some(c) => CULTURES[self.custs[c as usize].culture as usize].pbx,
            None => "pbx-eu",
        }
    }

    fn active(&self, c: u32, t: i64) -> bool {
        let x = &self.custs[c as usize];
        x.reg_at <= t && x.merged_into == NONE
    }

    fn random_active(&mut self, t: i64) -> Option<u32> {
        let n = self.custs.len() as u32;
        for _ in 0..8 {
            let c = self.rng.random_range(0..n);
            if self.active(c, t) {
                return Some(c);
            }
        }
        None
    }

    fn consent_valid(&self, c: u32, ch: &str, purpose: u8, t: i64) -> bool {
        self.custs[c as usize].consents.iter().any(|k| {
            k.purpose == purpose
                && (CONSENT_CH[k.ch as usize] == ch || CONSENT_CH[k.ch as usize] == "any")
                && k.granted <= t
                && t < k.expires
                && t < k.revoked
        })
    }

    fn amount(&mut self, c: Option<u32>, lo: u32, hi: u32) -> String {
        let cents = self.rng.random_range(lo * 100..hi * 100);
        let cur = c
            .map(|c| CULTURES[self.custs[c as usize].culture as usize].currency)
            .unwrap_or("GBP");
        let (u, d) = (cents / 100, cents % 100);
        match cur {
            "GBP" => format!("£{u}.{d:02}"),
            "USD" => format!("${u}.{d:02}"),
            "EUR" => format!("{u},{d:02} €"),
            "RUB" => format!("{} ₽", u * 80),
            "CNY" => format!("¥{}.00", u * 7),
            "MXN" => format!("MX${}.00", u * 18),
            _ => format!("{u}.{d:02}"),
        }
    }

    fn slots(&mut self, c: Option<u32>, agent: u32, t: i64, topic: usize) -> Slots {
        let (first, city, street, plan, last4) = match c {
            Some(c) => {
                let x = &self.custs[c as usize];
                let cu = &CULTURES[x.culture as usize];
                (
                    self.first_name(c).0.to_string(),
                    cu.cities[x.city as usize].0,
                    cu.streets[x.street as usize],
                    text::PLANS_OFFERED[x.plan as usize],
                    format!("{:04}", x.card),
                )
            }
            None => (
                "there".to_string(),
                "London",
                "High Street",
                "Fibre 500",
                "0000".to_string(),
            ),
        };
        let when = DateTime::<Utc>::from_timestamp_millis(t + self.secs(DAY / SEC, 6 * DAY / SEC))
            .expect("time");
        let month = text::MONTHS[(DateTime::<Utc>::from_timestamp_millis(t - 10 * DAY)
            .expect("time")
            .month0()) as usize];
        let mut s = Slots {
            first,
            agent: Self::agent_name(agent).to_string(),
            amount: self.amount(c, 5, 180),
            month,
            plan,
            newplan: self.pick(text::PLANS_OFFERED),
            device: self.pick(text::DEVICES),
            order: format!("ORD-{}", self.range(4_000_000, 9_999_999)),
            date: when.format("%a %-d %b").to_string(),
            speed: self.range(3, 120) as u32,
            city,
            street,
            bill: format!("INV-{}-{:06}", when.year(), self.range(0, 999_999)),
            last4,
            case: String::new(),
            subject: String::new(),
            days: self.range(2, 9) as u32,
        };
        s.subject = fill(self.pick(TOPICS[topic].subjects), &s);
        s
    }

    fn pick_topic(&mut self) -> usize {
        let w: Vec<u32> = TOPICS.iter().map(|t| t.weight).collect();
        self.weighted(&w)
    }

    // ---------------------------------------------------------------- init

    fn init(&mut self) {
        let n = self.sum.customers;
        let span = self.end - self.start;
        for _ in 0..n {
            let c = self.new_cust();
            self.custs.push(c);
        }
        // Who is in the migrated base, who signs up later.
        let mut late: Vec<u32> = Vec::new();
        let mut initial = 0u32;
        for i in 0..n as u32 {
            if i > 0 && self.p(0.2) {
                late.push(i);
                self.custs[i as usize].reg_at = NEVER - 1; // marked; set below
            } else {
                initial += 1;
            }
        }
        // Migration: the base, registered in index order over three hours.
        let gap = (3 * HOUR / i64::from(initial.max(1))).max(1);
        let mut t = self.start + 5 * MIN;
        for i in 0..n {
            if self.custs[i].reg_at == NEVER {
                self.custs[i].reg_at = t;
                self.custs[i].initial = true;
                t += gap;
            }
        }
        for &i in &late {
            self.custs[i as usize].reg_at = NEVER;
        }
        self.schedule(self.start + 5 * MIN, Act::Migrate(0));

        // Sign-ups; the first few are duplicates and household members of
        // base customers so merges, a merge chain and an unmerge happen.
        let span_days = f64::from(self.days.max(1));
        let mut k = 0usize;
        while k < late.len() {
            let j = late[k];
            let role = match k {
                0 => 1,
                1 => 3, // chain: duplicate of the previous duplicate
                2 => 2,
                _ => {
                    let r = self.frac();
                    if r < 0.10 {
                        1
                    } else if r < 0.12 {
                        2
                    } else if r < 0.13 && k + 1 < late.len() {
                        1 // followed by a chain
                    } else {
                        0
                    }
                }
            };
            let day = if role != 0 || k < 3 {
                (self.frac() * span_days * 0.4).floor()
            } else {
                (self.frac() * span_days).floor()
            };
            let reg = self.time_in_day(self.start + day as i64 * DAY);
            match role {
                1 | 2 => {
                    let p = self.base_customer(j);
                    self.make_related(j, p, role);
                    self.custs[j as usize].reg_at = reg;
                    self.schedule(reg, Act::Register(j));
                    let merge_at = reg + self.secs(8 * 3600, 40 * 3600);
                    let by_agent = self.p(0.3);
                    let chain =
                        (k == 0 || (role == 1 && k >= 3 && self.p(0.15))) && k + 1 < late.len();
                    if chain {
                        // The next sign-up duplicates this record; it is
                        // merged into it first, then this one into `p`.
                        let j2 = late[k + 1];
                        self.make_related(j2, j, 1);
                        let reg2 = reg + self.secs(2 * 3600, 8 * 3600);
                        self.custs[j2 as usize].reg_at = reg2;
                        self.schedule(reg2, Act::Register(j2));
                        let m1 = reg2 + self.secs(10 * 3600, 30 * 3600);
                        self.schedule(
                            m1,
                            Act::Merge {
                                survivor: j,
                                merged: j2,
                                by_agent: false,
                            },
                        );
                        let m2 = m1 + self.secs(12 * 3600, 36 * 3600);
                        self.schedule(
                            m2,
                            Act::Merge {
                                survivor: p,
                                merged: j,
                                by_agent,
                            },
                        );
                        k += 2;
                        continue;
                    }
                    self.schedule(
                        merge_at,
                        Act::Merge {
                            survivor: p,
                            merged: j,
                            by_agent: by_agent && role == 1,
                        },
                    );
                    if role == 2 {
                        let un = merge_at + self.secs(12 * 3600, 3 * 24 * 3600);
                        self.schedule(
                            un,
                            Act::Unmerge {
                                survivor: p,
                                merged: j,
                            },
                        );
                    }
                }
                _ => {
                    self.custs[j as usize].reg_at = reg;
                    self.schedule(reg, Act::Register(j));
                }
            }
            k += 1;
        }

        // Campaigns.
        for (k, d) in CAMPAIGNS.iter().enumerate() {
            let snap = |sim: &Sim<'_>, f: f64, hour: i64| {
                let t = sim.start + (f * span as f64) as i64;
                sim.day_start(t) + hour * HOUR
            };
            let starts = snap(self, d.start_f, 8).max(self.start + 8 * HOUR);
            let ends = snap(self, d.end_f, 20).max(starts + DAY);
            let pause = d.pause.map(|(a, b, _, _)| {
                let pa = self.start + (a * span as f64) as i64 + self.secs(0, 3600);
                let pb = (self.start + (b * span as f64) as i64).max(pa + 6 * HOUR);
                (pa, pb)
            });
            self.camps.push(Camp {
                starts,
                ends,
                pause,
            });
            let created = (starts - DAY).max(self.start + 30 * MIN) + self.secs(0, 600);
            self.schedule(created, Act::CampCreate(k as u16));
            let upload = created + self.secs(600, 1800);
            self.schedule(upload, Act::CampUpload(k as u16));
            if let Some((pa, pb)) = pause {
                self.schedule(pa, Act::CampPause(k as u16, true));
                self.schedule(pb, Act::CampPause(k as u16, false));
            }
            self.schedule(ends, Act::CampComplete(k as u16));
        }

        self.schedule(self.start, Act::Day(0));
        let t = self.start + 10 * HOUR + self.secs(0, 3600);
        self.schedule(t, Act::TestCase);
    }

    /// A base customer (registered in the migration) other than `j`.
    fn base_customer(&mut self, j: u32) -> u32 {
        let n = self.custs.len() as u32;
        for _ in 0..64 {
            let p = self.rng.random_range(0..n);
            let x = &self.custs[p as usize];
            if p != j && x.reg_at < self.start + DAY && x.role == 0 {
                return p;
            }
        }
        0
    }

    /// Makes `j` a duplicate record (role 1) or a household member (role 2) of `p`.
    fn make_related(&mut self, j: u32, p: u32, role: u8) {
        let src = &self.custs[p as usize];
        let (culture, female, first, last, last2, city, street, house, src_emails) = (
            src.culture,
            src.female,
            src.first,
            src.last,
            src.last2,
            src.city,
            src.street,
            src.house,
            src.emails,
        );
        let variant = self.rng.random_range(1..4);
        let share_email = self.p(0.5) && src_emails & 1 != 0;
        let x = &mut self.custs[j as usize];
        x.culture = culture;
        x.last = last;
        x.last2 = last2;
        x.city = city;
        x.street = street;
        x.house = house;
        x.owner = p;
        x.role = if role == 3 { 1 } else { role };
        if role == 2 {
            // Another person in the same home: shares the landline.
            x.female = !female;
            let cu = &CULTURES[culture as usize];
            x.first = (first as usize
                % if x.female {
                    cu.female.len()
                } else {
                    cu.male.len()
                }) as u8;
            x.phones = 2 | 1;
            x.share = 2;
            self.custs[p as usize].phones |= 2;
        } else {
            x.female = female;
            x.first = first;
            x.variant = variant;
            if share_email {
                x.emails = 1;
                x.share = 16;
                x.phones = if x.phones & 2 != 0 { 3 } else { 1 };
            } else {
                x.phones = 1;
                x.share = 1;
            }
            x.has_loyalty = false;
        }
    }

    // ------------------------------------------------------------- actions

    fn act(&mut self, act: Act) {
        match act {
            Act::Day(d) => self.day(d),
            Act::Migrate(i) => self.migrate(i),
            Act::Register(c) => self.register_new(c),
            Act::Contact(c) => {
                if self.active(c, self.now) {
                    self.inbound(c, self.now, None)
                }
            }
            Act::Notify(c) => self.notify(c),
            Act::Change(c, k) => self.change(c, k),
            Act::Stranger(k) => self.stranger(k),
            Act::TestCase => self.test_case(),
            Act::Merge {
                survivor,
                merged,
                by_agent,
            } => self.merge(survivor, merged, by_agent),
            Act::Unmerge { survivor, merged } => self.unmerge(survivor, merged),
            Act::Case(st) => self.case_step(st),
            Act::CampCreate(k) => self.camp_create(k),
            Act::CampUpload(k) => self.camp_upload(k),
            Act::CampPause(k, on) => self.camp_pause(k, on),
            Act::CampComplete(k) => self.camp_complete(k),
            Act::CampContact(st, step) => self.contact_step(st, step),
        }
    }

    fn day(&mut self, d: u32) {
        let day = self.start + i64::from(d) * DAY;
        let w = if self.weekend(day) { 0.55 } else { 1.0 };
        self.holds.retain(|_, (p, _)| *p > day);
        let n = self.custs.len() as u32;
        for c in 0..n {
            let x = &self.custs[c as usize];
            if x.reg_at >= day + DAY || x.merged_into != NONE {
                continue;
            }
            // Nothing before the customer exists.
            let after = x.reg_at.saturating_add(5 * MIN);
            let role = x.role;
            let a = [0.5, 1.2, 3.5][x.activity as usize];
            let r = self.frac();
            if r < 0.055 * a * w {
                let t = self.time_in_day(day).max(after);
                self.schedule(t, Act::Contact(c));
            }
            let r = self.frac();
            if r < 0.02 * w {
                let t = self.office_time(day).max(after);
                self.schedule(t, Act::Notify(c));
            }
            let r = self.frac();
            let change = if r < 0.004 {
                Some(Change::Profile)
            } else if r < 0.0065 {
                Some(Change::IdentityAdd)
            } else if r < 0.0077 {
                Some(Change::IdentityRemove)
            } else if r < 0.0097 {
                Some(Change::Grant)
            } else if r < 0.0112 {
                Some(Change::Revoke)
            } else {
                None
            };
            let change = change.or_else(|| {
                if d > 0 || role != 0 {
                    return None;
                }
                [
                    (F_PROFILE, Change::Profile),
                    (F_ID_ADD, Change::IdentityAdd),
                    (F_ID_REMOVE, Change::IdentityRemove),
                    (F_GRANT, Change::Grant),
                    (F_REVOKE, Change::Revoke),
                ]
                .into_iter()
                .find(|(f, _)| self.forced & (1 << f) == 0)
                .map(|(f, k)| {
                    self.forced |= 1 << f;
                    k
                })
            });
            if let Some(k) = change {
                let t = self.time_in_day(day).max(after);
                self.schedule(t, Act::Change(c, k));
            }
        }
        // Callers who are not (recognisable) customers.
        let strangers = (f64::from(n) * 0.004 * w) as u32 + u32::from(self.p(0.5));
        for i in 0..strangers {
            let k = if d == 0 && i == 0 {
                Stranger::Prank
            } else if d == 0 && i == 1 {
                Stranger::WrongNumber
            } else {
                match self.weighted(&[45, 22, 8, 25]) {
                    0 => Stranger::Prospect,
                    1 => Stranger::WrongNumber,
                    2 => Stranger::Prank,
                    _ => Stranger::Anonymous,
                }
            };
            let t = self.time_in_day(day);
            self.schedule(t, Act::Stranger(k));
        }
        if d > 0 && self.p(0.25) {
            let t = self.office_time(day);
            self.schedule(t, Act::TestCase);
        }
        if d + 1 < self.days {
            self.schedule(day + DAY, Act::Day(d + 1));
        }
    }
}

/// Which kinds of identity a conversation came from (for responses).
type Reply = Option<(&'static str, String)>;

/// A conversation being planned: its interaction and who is on it.
struct Conv {
    ix: u64,
    corr: String,
    /// The customer attached in the envelope (after identification).
    on: Option<u32>,
    last: Option<String>,
}

#[derive(Clone, Copy, Default)]
struct CallOpts {
    link: Option<u64>,
    registers: bool,
    stranger: Option<Stranger>,
    /// Outbound call by an agent about a case (no IVR, no new cases).
    outbound_for_case: bool,
}

/// What a finished contact leads to on the case side.
struct After {
    c: Option<u32>,
    known_at: i64,
    t_case: i64,
    channel: u64,
    agent: u32,
    topic: usize,
    ix: u64,
    corr: String,
    cause: Option<String>,
    reply: Reply,
    link: Option<u64>,
    new_cases: bool,
    by_rule: bool,
    in_call: bool,
    void: u8,
}

struct CaseSpec {
    c: Option<u32>,
    known: bool,
    identify_at: i64,
    topic: usize,
    t_open: i64,
    agent: u32,
    origin: Option<u64>,
    channel: u64,
    reply: Reply,
    corr: String,
    cause: Option<String>,
    void: u8,
    dup_of: u64,
    by_rule: bool,
    in_call: bool,
}

impl<'e> Sim<'e> {
    fn new_ix(&mut self, ch: u64) -> u64 {
        let n = self.next_ix;
        self.next_ix += 1;
        n * 8 + ch
    }

    /// An interaction event of conversation `cv`.
    fn iev(
        &mut self,
        cv: &mut Conv,
        ty: &'static str,
        t: i64,
        src: &'static str,
        agent: Option<u32>,
        data: Value,
    ) -> String {
        self.iev_lag(cv, ty, t, src, agent, data, 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn iev_lag(
        &mut self,
        cv: &mut Conv,
        ty: &'static str,
        t: i64,
        src: &'static str,
        agent: Option<u32>,
        data: Value,
        lag: i64,
    ) -> String {
        let id = self.push(
            Ev {
                ty,
                t,
                src,
                cust: cv.on,
                ix: Some(cv.ix),
                agent,
                corr: Some(cv.corr.clone()),
                cause: cv.last.clone(),
                data,
                ..Ev::default()
            },
            lag,
        );
        cv.last = Some(id.clone());
        id
    }

    /// A customer-stream event.
    #[allow(clippy::too_many_arguments)]
    fn cev(
        &mut self,
        c: u32,
        ty: &'static str,
        t: i64,
        src: &'static str,
        agent: Option<u32>,
        corr: Option<String>,
        cause: Option<String>,
        data: Value,
        lag: i64,
    ) -> String {
        self.push(
            Ev {
                ty,
                t,
                src,
                cust: Some(c),
                agent,
                corr,
                cause,
                data,
                ..Ev::default()
            },
            lag,
        )
    }

    fn stranger_phone(&mut self) -> String {
        let n = self.custs.len() as u64;
        let key = n * 8 + self.next_stranger;
        self.next_stranger += 1;
        let plan = self.rng.random_range(0..people::PLANS.len());
        people::phone_e164(plan, key, self.seed)
    }

    // -------------------------------------------------------- registration

    fn migrate(&mut self, i: u32) {
        let t = self.now;
        self.register(i, t, "crm-migration", None, None);
        if self.p(0.25) {
            for _ in 0..self.range(1, 3) {
                self.legacy_import(i);
            }
        }
        let n = self.custs.len() as u32;
        let mut j = i + 1;
        while j < n && !self.custs[j as usize].initial {
            j += 1;
        }
        if j < n {
            let t = self.custs[j as usize].reg_at.max(self.now);
            self.schedule(t, Act::Migrate(j));
        }
    }

    fn register_new(&mut self, c: u32) {
        let x = &self.custs[c as usize];
        if x.role == 0 && self.p(0.45) {
            // Signs up on the phone: the agent registers them on the call.
            let t = self.now;
            self.call_in(
                t,
                Some(c),
                9,
                CallOpts {
                    registers: true,
                    ..CallOpts::default()
                },
            );
        } else {
            let t = self.now;
            let (src, agent) = if self.p(0.8) {
                ("web-portal", None)
            } else {
                ("crm-ui", Some(self.agent(1)))
            };
            self.register(c, t, src, agent, None);
        }
    }

    fn address(&mut self, c: u32) -> Value {
        let x = &self.custs[c as usize];
        let cu = &CULTURES[x.culture as usize];
        let (city, pc) = cu.cities[x.city as usize];
        let street = cu.streets[x.street as usize];
        let line1 = match cu.code {
            "en-GB" | "en-US" | "fr-FR" => format!("{} {street}", x.house),
            "zh-CN" => format!("{street}{}号", x.house),
            _ => format!("{street} {}", x.house),
        };
        let postcode = match cu.code {
            "en-GB" => format!(
                "{pc} {}{}",
                x.house % 9 + 1,
                ["AA", "BD", "HJ", "QT", "XY"][x.house as usize % 5]
            ),
            _ => pc.to_string(),
        };
        json!({ "line1": line1, "city": city, "postcode": postcode, "country": cu.country })
    }

    /// `customer.registered` and the consents given at sign-up.
    fn register(
        &mut self,
        c: u32,
        t: i64,
        src: &'static str,
        agent: Option<u32>,
        corr: Option<String>,
    ) -> String {
        self.custs[c as usize].reg_at = t;
        let x = &self.custs[c as usize];
        let (
            phones,
            emails,
            has_chat,
            has_social,
            has_loyalty,
            has_card,
            role,
            segment,
            plan,
            since,
            birth,
        ) = (
            x.phones,
            x.emails,
            x.has_chat,
            x.has_social,
            x.has_loyalty,
            x.has_card,
            x.role,
            x.segment,
            x.plan,
            x.since,
            x.birth,
        );
        let cu = &CULTURES[x.culture as usize];
        let mut ids = Vec::new();
        for s in 0..4u8 {
            if phones & (1 << s) != 0 && s != 3 {
                let p = self.phone(c, s);
                ids.push(identity("phone", self.messy_phone(&p)));
            }
        }
        for s in 0..3u8 {
            if emails & (1 << s) != 0 {
                let e = self.email(c, s);
                ids.push(identity("email", self.messy_email(&e)));
            }
        }
        let acc = self.account(c);
        ids.push(identity(
            "account",
            if self.p(0.1) { format!(" {acc} ") } else { acc },
        ));
        if has_card && role == 0 {
            ids.push(identity("card", self.card(c)));
        }
        if has_chat {
            ids.push(identity("chat_handle", self.chat_handle(c)));
        }
        if has_social {
            ids.push(identity("social", self.social_handle(c)));
        }
        if has_loyalty {
            ids.push(identity(
                "external",
                people::loyalty(u64::from(c), self.seed),
            ));
        }
        let mut attrs = json!({
            "language": cu.code,
            "country": cu.country,
            "address": self.address(c),
            "segment": (["consumer", "small_business", "premium"][segment as usize]),
            "plan": text::PLANS_OFFERED[plan as usize],
            "preferred_channel": self.pick(&["email", "sms", "phone", "email", "chat"]),
        });
        let a = obj(&mut attrs);
        if src == "crm-migration" {
            a.insert(
                "customer_since".into(),
                json!(format!("{since}-{:02}-{:02}", c % 12 + 1, c % 28 + 1)),
            );
            a.insert("legacy_id".into(), json!(format!("L-{:06}", c * 7 + 13)));
            a.insert(
                "credit_class".into(),
                json!(["A", "A", "B", "C"][c as usize % 4]),
            );
        } else {
            a.insert(
                "signup_channel".into(),
                json!(if src == "web-portal" { "web" } else { "phone" }),
            );
        }
        if segment != 1 {
            a.insert("birth_year".into(), json!(birth));
        } else {
            a.insert(
                "company".into(),
                json!(format!(
                    "{} {}",
                    self.last_name(c).0,
                    ["Ltd", "GmbH", "S.L.", "SARL", "LLC"][c as usize % 5]
                )),
            );
        }
        if segment == 2 {
            a.insert("vip".into(), json!(true));
        }
        let data = json!({ "name": self.name(c), "identities": ids, "attributes": attrs });
        let id = self.cev(
            c,
            "customer.registered",
            t,
            src,
            agent,
            corr.clone(),
            None,
            data,
            0,
        );
        // Consents given at sign-up.
        let span = self.end - self.start;
        let offers: [(u8, u8, f64); 7] = [
            (2, 0, 0.45),
            (1, 0, 0.25),
            (0, 0, 0.22),
            (5, 1, 0.55),
            (1, 2, 0.3),
            (4, 0, if has_social { 0.5 } else { 0.0 }),
            (2, 2, 0.15),
        ];
        let mut k = 1;
        for (ch, purpose, p) in offers {
            if !self.p(p) {
                continue;
            }
            let expires = match self.weighted(&[5, 40, 55]) {
                0 => self.start + (span as f64 * (0.15 + 0.65 * self.frac())) as i64,
                1 => t + self.secs(300 * 86400, 730 * 86400),
                _ => NEVER,
            };
            self.grant(
                c,
                t + k * SEC,
                src,
                agent,
                corr.clone(),
                Some(id.clone()),
                ch,
                purpose,
                expires,
                0,
            );
            k += 1;
        }
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn grant(
        &mut self,
        c: u32,
        t: i64,
        src: &'static str,
        agent: Option<u32>,
        corr: Option<String>,
        cause: Option<String>,
        ch: u8,
        purpose: u8,
        expires: i64,
        lag: i64,
    ) -> String {
        let mut data =
            json!({ "channel": CONSENT_CH[ch as usize], "purpose": PURPOSES[purpose as usize] });
        let d = obj(&mut data);
        if expires != NEVER {
            d.insert("expires_at".into(), json!(ts(expires)));
        }
        d.insert(
            "method".into(),
            json!(match src {
                "crm-migration" => "legacy_record",
                "crm-ui" => "verbal_recorded",
                "mobile-app" => "in_app_toggle",
                _ => "double_opt_in",
            }),
        );
        d.insert("wording_version".into(), json!("privacy-2026-03"));
        d.insert(
            "wording".into(),
            json!(format!(
                "I agree that Acme Connect may contact me by {} for {} purposes. I can withdraw this consent at any time in My Acme or by contacting customer care.",
                match ch {
                    0 => "phone",
                    1 => "text message",
                    2 => "email",
                    3 => "chat",
                    4 => "social media",
                    _ => "any channel",
                },
                PURPOSES[purpose as usize]
            )),
        );
        let id = self.cev(c, "consent.granted", t, src, agent, corr, cause, data, lag);
        let x = &mut self.custs[c as usize];
        x.consents.retain(|k| !(k.ch == ch && k.purpose == purpose));
        x.consents.push(Consent {
            ch,
            purpose,
            granted: t,
            expires,
            revoked: NEVER,
        });
        id
    }

    fn revoke(
        &mut self,
        c: u32,
        ch: u8,
        purpose: u8,
        src: &'static str,
        cause: Option<String>,
        lag: i64,
    ) -> String {
        let t = self.now;
        let data = json!({ "channel": CONSENT_CH[ch as usize], "purpose": PURPOSES[purpose as usize], "via": match src {
            "web-portal" => "preference_centre",
            "marketing-hub" => "unsubscribe_link",
            "sms-gateway" => "STOP_keyword",
            _ => "agent_request",
        } });
        let agent = if src == "crm-ui" || src == "dialer" {
            Some(self.agent(1))
        } else {
            None
        };
        let id = self.cev(c, "consent.revoked", t, src, agent, None, cause, data, lag);
        for k in self.custs[c as usize].consents.iter_mut() {
            if k.ch == ch && k.purpose == purpose && k.revoked == NEVER {
                k.revoked = t;
            }
        }
        id
    }

    /// An interaction from the legacy system, imported with the migration:
    /// it happened weeks before the history starts.
    fn legacy_import(&mut self, c: u32) {
        let ago = self.secs(86400, 90 * 86400);
        let t = self.day_start(self.now - ago) + 9 * HOUR + self.secs(0, 9 * 3600);
        let topic = self.pick_topic();
        let ch = if self.p(0.7) { CH_PHONE } else { CH_EMAIL };
        let ix = self.new_ix(ch);
        let talk = if ch == CH_PHONE {
            self.range(60, 900)
        } else {
            0
        };
        let from = if ch == CH_PHONE {
            let p = self.some_phone(c).unwrap_or_else(|| self.phone(c, 0));
            identity("phone", self.messy_phone(&p))
        } else {
            match self.some_email(c) {
                Some(e) => identity("email", self.messy_email(&e)),
                None => identity("account", self.account(c)),
            }
        };
        let subject = fill(
            self.pick(TOPICS[topic].subjects),
            &self.slots(Some(c), 0, t, topic),
        );
        let mut data = json!({
            "channel": CH_NAMES[ch as usize], "direction": "inbound", "from": from,
            "subject": subject, "outcome": "completed", "ended_at": ts(t + talk * SEC + 60 * SEC),
            "legacy_ref": format!("SIEBEL-{}", 4_000_000 + ix / 8), "category": TOPICS[topic].category,
        });
        if talk > 0 {
            obj(&mut data).insert("talk_seconds".into(), json!(talk));
        }
        let ev = Ev {
            ty: "interaction.recorded",
            t,
            src: "legacy-import",
            cust: Some(c),
            ix: Some(ix),
            data,
            ..Ev::default()
        };
        let lag = self.now - t;
        self.push(ev, lag);
    }

    // ------------------------------------------------------ conversations

    fn inbound(&mut self, c: u32, t: i64, link: Option<u64>) {
        let topic = self.pick_topic();
        if link.is_some() {
            if self.p(0.7) {
                self.call_in(
                    t,
                    Some(c),
                    topic,
                    CallOpts {
                        link,
                        ..CallOpts::default()
                    },
                );
            } else {
                self.email_in(t, c, topic, link);
            }
            return;
        }
        match self.weighted(&[44, 19, 17, 6, 5, 2, 7]) {
            0 => self.call_in(t, Some(c), topic, CallOpts::default()),
            1 => self.email_in(t, c, topic, None),
            2 => self.chat_in(t, Some(c), topic),
            3 => self.sms_in(t, c, topic),
            4 => {
                if self.custs[c as usize].has_social {
                    self.social_in(t, c, topic)
                } else {
                    self.chat_in(t, Some(c), topic)
                }
            }
            5 => {
                let topic = if self.p(0.7) { 6 } else { topic };
                self.video_in(t, c, topic)
            }
            _ => self.bpo_call(t, c, topic),
        }
    }

    fn queue_wait(&mut self) -> i64 {
        // Mostly short, with a long tail.
        let f = self.frac();
        (5.0 + 600.0 * f * f * f) as i64 * SEC
    }

    fn talk_time(&mut self) -> i64 {
        let f = self.frac();
        (90.0 + 420.0 * self.frac() + 1500.0 * f * f * f * f) as i64 * SEC
    }

    /// An inbound phone call, planned whole.
    fn call_in(&mut self, t0: i64, c: Option<u32>, topic: usize, o: CallOpts) {
        let ch = CH_PHONE;
        let ix = self.new_ix(ch);
        let corr = self.corr();
        let pbx = self.pbx(c);
        let country = c.map(|c| self.country(c)).unwrap_or("GB");
        let tp = &TOPICS[topic];
        let mut caller_not_customer = false;
        let mut own_registered = false;
        let mut from_unregistered_own = false;
        let from: Option<String> = match (c, o.stranger) {
            (Some(c), None) if o.registers => Some(self.phone(c, 0)),
            (Some(c), None) => {
                let r = self.frac();
                if self.want(F_CALLER_NOT_CUSTOMER, 0.0) || r < 0.07 {
                    match self.random_active(t0) {
                        Some(o) if o != c => {
                            caller_not_customer = true;
                            self.some_phone(o)
                        }
                        _ => self.some_phone(c),
                    }
                } else if r < 0.86 {
                    own_registered = true;
                    self.some_phone(c)
                } else if r < 0.95 {
                    from_unregistered_own = true;
                    Some(self.phone(c, 3))
                } else {
                    None
                }
            }
            _ => {
                if self.p(0.8) {
                    Some(self.stranger_phone())
                } else {
                    None
                }
            }
        };
        let mut cv = Conv {
            ix,
            corr: corr.clone(),
            on: None,
            last: None,
        };
        // Identification plan.
        let use_ivr = self.p(0.8);
        let ivr_secs = if use_ivr { self.secs(20, 120) } else { 0 };
        let is_customer = c.is_some() && o.stranger.is_none() && !o.registers;
        let ani = is_customer && own_registered && self.p(0.8);
        let ani_on_start = ani && self.p(0.7);
        let typed_account = is_customer && !ani && use_ivr && self.p(0.5);
        let mut data = json!({ "channel": "phone", "direction": "inbound", "queue": tp.queue });
        {
            let d = obj(&mut data);
            if let Some(f) = &from {
                d.insert("from".into(), identity("phone", self.messy_phone(f)));
            }
            let hot = people::hotline(country);
            d.insert("to".into(), identity("phone", self.messy_phone(hot)));
            d.insert("dnis".into(), json!(hot));
            d.insert(
                "trunk".into(),
                json!(format!("SIP-{}-{:02}", country, ix % 7 + 1)),
            );
            d.insert(
                "site".into(),
                json!(match pbx {
                    "pbx-east" => "nyc-dc1",
                    "pbx-apac" => "sha-dc2",
                    _ => "lon-dc1",
                }),
            );
            if use_ivr {
                let mut path = vec![
                    json!("welcome"),
                    json!("language_select"),
                    json!("main_menu"),
                    json!(tp.ivr),
                ];
                let mut inputs = Map::new();
                inputs.insert(
                    "language".into(),
                    json!(if country == "GB" || country == "US" {
                        "1"
                    } else {
                        "2"
                    }),
                );
                inputs.insert("menu".into(), json!(format!("{}", topic % 6 + 1)));
                if typed_account {
                    path.push(json!("account_entry"));
                    let acc = self.account(c.expect("customer"));
                    inputs.insert("account_number".into(), json!(people::account_digits(&acc)));
                } else if self.p(0.2) {
                    path.push(json!("account_entry"));
                    inputs.insert("account_number".into(), json!("timeout"));
                }
                if self.p(0.15) {
                    path.push(json!("self_service_balance"));
                }
                path.push(json!("queue_transfer"));
                d.insert(
                    "ivr".into(),
                    json!({ "path": path, "inputs": inputs, "duration_seconds": ivr_secs / SEC }),
                );
            }
        }
        let mut t = t0 + self.jit();
        if ani_on_start {
            cv.on = c;
        }
        self.iev(&mut cv, "interaction.started", t, pbx, None, data);
        let mut known_at = if ani_on_start { t } else { NEVER };
        if ani && !ani_on_start {
            t += self.secs(1, 3);
            cv.on = c;
            self.iev(
                &mut cv,
                "interaction.identified",
                t,
                pbx,
                None,
                json!({ "method": "ani" }),
            );
            known_at = t;
        }
        t += ivr_secs;
        if typed_account {
            cv.on = c;
            self.iev(
                &mut cv,
                "interaction.identified",
                t,
                "ivr-platform",
                None,
                json!({ "method": "ivr", "matched": "account_number" }),
            );
            known_at = t;
        }
        // Abandoned in the queue, or voicemail out of hours.
        let hour = (t - self.day_start(t)) / HOUR;
        let wait = self.queue_wait();
        if c.is_some() && !o.registers && !(8..20).contains(&hour) && self.p(0.5) {
            t += self.secs(20, 60);
            let slots = self.slots(c, 0, t, topic);
            let data = json!({ "author": "customer", "text": fill(self.pick(text::VOICEMAILS), &slots), "kind": "voicemail_transcription" });
            self.iev(&mut cv, "interaction.message", t, pbx, None, data);
            t += self.secs(25, 70);
            self.iev(&mut cv, "interaction.ended", t, pbx, None, json!({ "outcome": "voicemail", "talk_seconds": 0, "handle_seconds": (t - t0) / SEC, "wrapup_code": "VOICEMAIL" }));
            return;
        }
        if !o.registers && self.want(F_ABANDON, 0.07) {
            t += wait + self.secs(10, 240);
            self.iev(&mut cv, "interaction.ended", t, pbx, None, json!({ "outcome": "abandoned", "talk_seconds": 0, "handle_seconds": 0, "queue_seconds": (t - t0 - ivr_secs) / SEC }));
            return;
        }
        t += wait;
        let mut agent = self.agent(1);
        self.iev(
            &mut cv,
            "interaction.assigned",
            t,
            pbx,
            Some(agent),
            json!({ "queue": tp.queue, "wait_seconds": wait / SEC, "skill": tp.category }),
        );
        let t_a = t;
        let talk = self.talk_time() + if o.registers { 6 * MIN } else { 0 };
        let t_end = t_a + talk;
        // The agent identifies the caller.
        let mut late: Option<(i64, i64, &'static str)> = None;
        if o.registers {
            let c = c.expect("registering customer");
            let tr = t_a + self.secs(90, 240);
            let reg = self.register(c, tr, "crm-ui", Some(agent), Some(corr.clone()));
            cv.on = Some(c);
            cv.last = Some(reg);
            let ti = tr + self.secs(5, 20);
            self.iev(
                &mut cv,
                "interaction.identified",
                ti,
                "crm-ui",
                Some(agent),
                json!({ "method": "agent_search" }),
            );
            known_at = ti;
        } else if is_customer && known_at == NEVER {
            let method = if caller_not_customer || self.p(0.45) {
                "verified"
            } else {
                "agent_search"
            };
            let ti = t_a + self.secs(30, 150).min(talk - 5 * SEC).max(SEC);
            if !caller_not_customer && self.want(F_NEVER_ID, 0.05) {
                // Never identified: the caller would not give details.
            } else if self.want(F_LATE_ID, 0.12) {
                // Identified in wrap-up; the CRM syncs it hours later.
                let occ = t_end + self.secs(60, 600);
                let lag = self.secs(3600, 6 * 3600);
                late = Some((occ, lag, method));
                known_at = occ;
            } else {
                cv.on = c;
                self.iev(&mut cv, "interaction.identified", ti, "crm-ui", Some(agent), json!({ "method": method, "verification": if method == "verified" { "security_questions" } else { "name_and_postcode" } }));
                known_at = ti;
            }
        }
        // A new number on the customer's record.
        if from_unregistered_own && known_at < t_end && self.p(0.3) {
            let c = c.expect("customer");
            let p = self.phone(c, 3);
            let tt = (known_at + self.secs(30, 90)).min(t_end - SEC);
            let msg = self.messy_phone(&p);
            self.cev(
                c,
                "customer.identity_added",
                tt,
                "crm-ui",
                Some(agent),
                Some(corr.clone()),
                cv.last.clone(),
                json!({ "identity": identity("phone", msg), "verified": true, "label": "work" }),
                0,
            );
            self.custs[c as usize].phones |= 8;
        }
        // Profile changes made on the call.
        let t_case = t_a + talk * 6 / 10;
        if let Some(c) = c {
            if tp.profile_change && known_at < t_case && !o.registers {
                self.profile_update(
                    c,
                    t_case - 20 * SEC,
                    "crm-ui",
                    Some(agent),
                    Some(corr.clone()),
                    cv.last.clone(),
                    topic,
                );
            }
        }
        // Transfers.
        let mut tier_now = 1;
        if !o.outbound_for_case && talk > 3 * MIN && self.want(F_TRANSFER, 0.10) {
            let tt = t_a + talk * 4 / 10;
            let reason = self.pick(text::TRANSFER_REASONS);
            let to = if self.p(0.8) {
                self.agent(2)
            } else {
                self.agent(1)
            };
            let data = if to >= self.agents[0] {
                tier_now = 2;
                json!({ "to_queue": tp.tier2_queue, "to_agent_id": agent_id(to), "tier": 2, "reason": reason, "mode": "warm" })
            } else {
                json!({ "to_queue": "general", "to_agent_id": agent_id(to), "reason": reason, "mode": "cold" })
            };
            self.iev(
                &mut cv,
                "interaction.transferred",
                tt,
                pbx,
                Some(agent),
                data,
            );
            agent = to;
        }
        let _ = tier_now;
        if self.want(F_CALLMSG, 0.03) {
            let slots = self.slots(c, agent, t, topic);
            let text = fill(self.pick(text::CALL_SUMMARIES), &slots);
            self.iev(
                &mut cv,
                "interaction.message",
                t_end - 5 * SEC,
                "speech-analytics",
                None,
                json!({ "author": "bot", "text": text }),
            );
        }
        let outcome = if self.p(0.015) { "failed" } else { "completed" };
        let wrap = self.secs(20, 180);
        let wrapup = match (o.stranger, o.link.is_some()) {
            (Some(Stranger::Prospect), _) => "INFO_PROVIDED",
            (Some(_), _) => "NO_ACTION",
            (None, true) => "CASE_UPDATED",
            _ => self.pick(text::WRAPUP),
        };
        let end_data = json!({
            "outcome": outcome, "talk_seconds": talk / SEC, "handle_seconds": (talk + wrap) / SEC,
            "wrapup_code": wrapup, "hold_seconds": self.range(0, 90), "recording_id": format!("rec-{}-{:08x}", pbx, ix),
        });
        let mut end_data = end_data;
        if outcome == "completed" && o.stranger.is_none() {
            let slots = self.slots(c, agent, t, topic);
            let notes = fill(self.pick(tp.notes), &slots);
            obj(&mut end_data).insert("wrapup_notes".into(), json!(notes));
        }
        let data = end_data;
        let at = t_end + self.jit();
        self.iev(&mut cv, "interaction.ended", at, pbx, Some(agent), data);
        if let Some((occ, lag, method)) = late {
            cv.on = c;
            self.iev_lag(
                &mut cv,
                "interaction.identified",
                occ,
                "crm-ui",
                Some(agent),
                json!({ "method": method, "note": "identified during wrap-up" }),
                lag,
            );
        }
        if o.outbound_for_case {
            return;
        }
        let void = match o.stranger {
            Some(Stranger::Prank) if self.want(F_PRANK, 0.6) => VOID_PRANK,
            Some(Stranger::WrongNumber) if self.want(F_WRONG, 0.3) => VOID_WRONG,
            _ => 0,
        };
        let new_cases = !matches!(
            o.stranger,
            Some(Stranger::Prospect) | Some(Stranger::Prank) | Some(Stranger::WrongNumber)
        ) && (o.stranger != Some(Stranger::Anonymous) || self.p(0.4));
        let reply = from.map(|f| ("phone", f));
        let cause = cv.last.clone();
        self.after_contact(After {
            c: if o.stranger.is_some() { None } else { c },
            known_at,
            t_case,
            channel: ch,
            agent,
            topic,
            ix,
            corr,
            cause,
            reply,
            link: o.link,
            new_cases,
            by_rule: false,
            in_call: true,
            void,
        });
    }

    /// A call imported from the outsourcing partner's system the next night.
    fn bpo_call(&mut self, t0: i64, c: u32, topic: usize) {
        let ix = self.new_ix(CH_PHONE);
        let talk = self.talk_time();
        let from = self.some_phone(c).unwrap_or_else(|| self.phone(c, 0));
        let slots = self.slots(Some(c), 0, t0, topic);
        let country = self.country(c);
        let data = json!({
            "channel": "phone", "direction": "inbound",
            "from": identity("phone", self.messy_phone(&from)),
            "to": identity("phone", people::hotline(country).to_string()),
            "subject": slots.subject, "outcome": "completed",
            "ended_at": ts(t0 + talk), "talk_seconds": talk / SEC,
            "vendor": "TeleServ BPO", "vendor_agent": format!("TS-{:05}", self.range(10000, 99999)),
            "batch": format!("bpo-{}", DateTime::<Utc>::from_timestamp_millis(t0).expect("time").format("%Y%m%d")),
            "notes": fill(self.pick(TOPICS[topic].notes), &slots),
        });
        let publish = self.day_start(t0) + DAY + 3 * HOUR + self.secs(0, 1800);
        let ev = Ev {
            ty: "interaction.recorded",
            t: t0,
            src: "bpo-import",
            cust: Some(c),
            ix: Some(ix),
            data,
            ..Ev::default()
        };
        self.push(ev, publish - t0);
    }

    fn email_in(&mut self, t0: i64, c: u32, topic: usize, link: Option<u64>) {
        let ix = self.new_ix(CH_EMAIL);
        let corr = self.corr();
        let tp = &TOPICS[topic];
        let mut cv = Conv {
            ix,
            corr: corr.clone(),
            on: None,
            last: None,
        };
        let (from, registered) = match self.some_email(c) {
            Some(e) if self.p(0.85) => (e, true),
            _ => (self.email(c, 2), false),
        };
        let on_start = registered && self.p(0.7);
        if on_start {
            cv.on = Some(c);
        }
        let mut slots = self.slots(Some(c), 0, t0, topic);
        let subject = if let Some(k) = link {
            format!("Re: [{}] {}", case_id(k), slots.subject)
        } else {
            slots.subject.clone()
        };
        let msg_id = format!(
            "<{:016x}@{}>",
            self.ids.random::<u64>(),
            from.split('@').nth(1).unwrap_or("mail.example")
        );
        let mut t = t0;
        let from_messy = self.messy_email(&from);
        self.iev(
            &mut cv,
            "interaction.started",
            t,
            "mail-gateway",
            None,
            json!({
                "channel": "email", "direction": "inbound",
                "from": identity("email", from_messy),
                "to": identity("email", SUPPORT_EMAIL.to_string()),
                "subject": subject, "queue": format!("email-{}", tp.queue), "message_id": msg_id,
            }),
        );
        t += self.secs(1, 3);
        let body = fill(self.pick(tp.customer), &slots);
        let name = self.name(c);
        let attachments = if self.p(0.2) {
            json!([{ "name": "screenshot.png", "size": self.range(40_000, 900_000) }])
        } else {
            json!([])
        };
        self.iev(&mut cv, "interaction.message", t, "mail-gateway", None, json!({
            "author": "customer", "subject": subject, "text": format!("{body}\n\nKind regards,\n{name}"),
            "attachments": attachments,
        }));
        // Rule-based case for the urgent topics.
        let by_rule = link.is_none()
            && (tp.category == "fraud" || tp.category == "complaints")
            && self.p(0.5);
        let delay = self.secs(20 * 60, 20 * 3600);
        let picked = self.office_hours(t + delay);
        let wait = picked - t;
        t = picked;
        let agent = self.agent(1);
        slots.agent = Self::agent_name(agent).to_string();
        self.iev(
            &mut cv,
            "interaction.assigned",
            t,
            "crm-ui",
            Some(agent),
            json!({ "queue": format!("email-{}", tp.queue), "wait_seconds": wait / SEC }),
        );
        let mut known_at = if on_start { t0 } else { NEVER };
        if !on_start {
            t += self.secs(60, 300);
            cv.on = Some(c);
            self.iev(&mut cv, "interaction.identified", t, "crm-ui", Some(agent), json!({ "method": "agent_search", "matched": if registered { "email" } else { "name_and_account" } }));
            known_at = t;
            if !registered && self.p(0.3) {
                let e = self.messy_email(&from);
                self.cev(
                    c,
                    "customer.identity_added",
                    t + 30 * SEC,
                    "crm-ui",
                    Some(agent),
                    Some(corr.clone()),
                    cv.last.clone(),
                    json!({ "identity": identity("email", e), "verified": false }),
                    0,
                );
                self.custs[c as usize].emails |= 4;
            }
        }
        let t_case = t + self.secs(120, 400);
        t = t_case + self.secs(120, 900);
        let reply = fill(self.pick(tp.agent), &slots);
        self.iev(&mut cv, "interaction.message", t, "crm-ui", Some(agent), json!({ "author": "agent", "subject": format!("Re: {subject}"), "text": format!("{reply}\n\nBest wishes,\n{} - Acme Connect Customer Care", slots.agent) }));
        if self.p(0.3) {
            t += self.secs(3600, 10 * 3600);
            let thanks = fill(self.pick(text::CUSTOMER_THANKS), &slots);
            self.iev(&mut cv, "interaction.message", t, "mail-gateway", None, json!({ "author": "customer", "subject": format!("Re: {subject}"), "text": thanks }));
        }
        t += self.secs(30, 180);
        let data = json!({ "outcome": "completed", "handle_seconds": self.range(180, 1500), "wrapup_code": if link.is_some() { "CASE_UPDATED" } else { "INFO_PROVIDED" } });
        self.iev(&mut cv, "interaction.ended", t, "crm-ui", Some(agent), data);
        let cause = cv.last.clone();
        self.after_contact(After {
            c: Some(c),
            known_at,
            t_case: if by_rule { t0 + 5 * SEC } else { t_case },
            channel: CH_EMAIL,
            agent,
            topic,
            ix,
            corr,
            cause,
            reply: Some(("email", from)),
            link,
            new_cases: true,
            by_rule,
            in_call: false,
            void: 0,
        });
    }

    fn chat_in(&mut self, t0: i64, c: Option<u32>, topic: usize) {
        let ix = self.new_ix(CH_CHAT);
        let corr = self.corr();
        let tp = &TOPICS[topic];
        let mut cv = Conv {
            ix,
            corr: corr.clone(),
            on: None,
            last: None,
        };
        let logged_in = c.is_some() && self.p(0.55);
        let mut slots = self.slots(c, 0, t0, topic);
        let mut data = json!({ "channel": "chat", "direction": "inbound", "queue": format!("chat-{}", tp.queue), "subject": slots.subject, "page": "https://www.acmeconnect.example/help", "user_agent": self.pick(&["Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/130.0", "Mozilla/5.0 (Linux; Android 15) Chrome/130.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1"]) });
        if let Some(c) = c {
            let d = obj(&mut data);
            if logged_in || self.custs[c as usize].has_chat {
                let h = self.chat_handle(c);
                d.insert("from".into(), identity("chat_handle", h));
            } else if let Some(e) = self.some_email(c) {
                let e = self.messy_email(&e);
                d.insert("from".into(), identity("email", e));
            }
        }
        if logged_in {
            cv.on = c;
        }
        let mut t = t0;
        self.iev(
            &mut cv,
            "interaction.started",
            t,
            "chat-platform",
            None,
            data,
        );
        t += SEC;
        let g = self.pick(text::BOT_GREETINGS);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "chat-platform",
            None,
            json!({ "author": "bot", "text": g }),
        );
        t += self.secs(15, 70);
        let first = fill(self.pick(tp.customer), &slots);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "chat-platform",
            None,
            json!({ "author": "customer", "text": first }),
        );
        t += self.secs(2, 5);
        let h = fill(self.pick(text::BOT_HANDOFF), &slots);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "chat-platform",
            None,
            json!({ "author": "bot", "text": h }),
        );
        let wait = self.queue_wait();
        if self.p(0.08) {
            t += wait + self.secs(30, 300);
            self.iev(
                &mut cv,
                "interaction.ended",
                t,
                "chat-platform",
                None,
                json!({ "outcome": "abandoned", "talk_seconds": 0, "reason": "visitor left" }),
            );
            return;
        }
        t += wait;
        let agent = self.agent(1);
        slots.agent = Self::agent_name(agent).to_string();
        self.iev(
            &mut cv,
            "interaction.assigned",
            t,
            "chat-platform",
            Some(agent),
            json!({ "queue": format!("chat-{}", tp.queue), "wait_seconds": wait / SEC }),
        );
        let t_a = t;
        t += self.secs(10, 40);
        let greet = fill(self.pick(text::AGENT_GREETINGS), &slots);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "chat-platform",
            Some(agent),
            json!({ "author": "agent", "text": greet }),
        );
        let mut known_at = if logged_in { t0 } else { NEVER };
        if let Some(c) = c {
            if !logged_in {
                t += self.secs(30, 120);
                let acc = self.account(c);
                let postcode = self.address(c)["postcode"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                self.iev(&mut cv, "interaction.message", t, "chat-platform", None, json!({ "author": "customer", "text": format!("Sure, it's {acc}, postcode {postcode}") }));
                if !self.p(0.06) {
                    t += self.secs(20, 90);
                    cv.on = Some(c);
                    let m = if self.p(0.5) {
                        "verified"
                    } else {
                        "agent_search"
                    };
                    self.iev(
                        &mut cv,
                        "interaction.identified",
                        t,
                        "crm-ui",
                        Some(agent),
                        json!({ "method": m }),
                    );
                    known_at = t;
                }
            }
        }
        let t_case = t + self.secs(30, 120);
        t = t_case + self.secs(60, 360);
        let ans = fill(self.pick(tp.agent), &slots);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "chat-platform",
            Some(agent),
            json!({ "author": "agent", "text": ans }),
        );
        t += self.secs(20, 120);
        let thanks = fill(self.pick(text::CUSTOMER_THANKS), &slots);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "chat-platform",
            None,
            json!({ "author": "customer", "text": thanks }),
        );
        if self.p(0.03) {
            t += self.secs(10, 40);
            self.iev(
                &mut cv,
                "interaction.transferred",
                t,
                "chat-platform",
                Some(agent),
                json!({ "to_queue": tp.tier2_queue, "tier": 2, "reason": "needs specialist" }),
            );
        }
        t += self.secs(20, 90);
        let data = json!({ "outcome": "completed", "talk_seconds": (t - t_a) / SEC, "handle_seconds": (t - t_a) / SEC + self.range(30, 120), "wrapup_code": self.pick(text::WRAPUP), "csat": self.range(1, 6) });
        self.iev(
            &mut cv,
            "interaction.ended",
            t,
            "chat-platform",
            Some(agent),
            data,
        );
        let cause = cv.last.clone();
        self.after_contact(After {
            c,
            known_at,
            t_case,
            channel: CH_CHAT,
            agent,
            topic,
            ix,
            corr,
            cause,
            reply: None,
            link: None,
            new_cases: c.is_some(),
            by_rule: false,
            in_call: true,
            void: 0,
        });
    }

    fn sms_in(&mut self, t0: i64, c: u32, topic: usize) {
        let ix = self.new_ix(CH_SMS);
        let corr = self.corr();
        let tp = &TOPICS[topic];
        let mut cv = Conv {
            ix,
            corr: corr.clone(),
            on: None,
            last: None,
        };
        let phone = self.some_phone(c).unwrap_or_else(|| self.phone(c, 0));
        let matched = self.p(0.85);
        if matched {
            cv.on = Some(c);
        }
        let mut slots = self.slots(Some(c), 0, t0, topic);
        let mut t = t0;
        let country = self.country(c);
        let from = self.messy_phone(&phone);
        self.iev(&mut cv, "interaction.started", t, "sms-gateway", None, json!({ "channel": "sms", "direction": "inbound", "from": identity("phone", from), "to": identity("phone", people::hotline(country).to_string()), "queue": "sms" }));
        t += SEC;
        let txt: String = fill(self.pick(tp.customer), &slots)
            .chars()
            .take(160)
            .collect();
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "sms-gateway",
            None,
            json!({ "author": "customer", "text": txt, "segments": 1 }),
        );
        let wait = self.secs(60, 3 * 3600);
        t += wait;
        let agent = self.agent(1);
        slots.agent = Self::agent_name(agent).to_string();
        self.iev(
            &mut cv,
            "interaction.assigned",
            t,
            "crm-ui",
            Some(agent),
            json!({ "queue": "sms", "wait_seconds": wait / SEC }),
        );
        let mut known_at = if matched { t0 } else { NEVER };
        if !matched && self.p(0.7) {
            t += self.secs(30, 120);
            cv.on = Some(c);
            self.iev(
                &mut cv,
                "interaction.identified",
                t,
                "crm-ui",
                Some(agent),
                json!({ "method": "agent_search" }),
            );
            known_at = t;
        }
        let t_case = t + self.secs(30, 90);
        t = t_case + self.secs(30, 300);
        let ans: String = fill(self.pick(tp.agent), &slots)
            .chars()
            .take(300)
            .collect();
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "crm-ui",
            Some(agent),
            json!({ "author": "agent", "text": ans, "segments": 2 }),
        );
        t += self.secs(60, 900);
        let data = json!({ "outcome": "completed", "handle_seconds": self.range(60, 600) });
        self.iev(&mut cv, "interaction.ended", t, "crm-ui", Some(agent), data);
        let cause = cv.last.clone();
        self.after_contact(After {
            c: Some(c),
            known_at,
            t_case,
            channel: CH_SMS,
            agent,
            topic,
            ix,
            corr,
            cause,
            reply: Some(("phone", phone)),
            link: None,
            new_cases: true,
            by_rule: false,
            in_call: false,
            void: 0,
        });
    }

    fn social_in(&mut self, t0: i64, c: u32, topic: usize) {
        let ix = self.new_ix(CH_SOCIAL);
        let corr = self.corr();
        let tp = &TOPICS[topic];
        let mut cv = Conv {
            ix,
            corr: corr.clone(),
            on: None,
            last: None,
        };
        let mut slots = self.slots(Some(c), 0, t0, topic);
        let handle = self.social_handle(c);
        let mut t = t0;
        let network = self.pick(&["x", "facebook", "instagram"]);
        self.iev(&mut cv, "interaction.started", t, "social-hub", None, json!({ "channel": "social", "direction": "inbound", "from": identity("social", handle), "to": identity("social", SOCIAL_ACCOUNT.to_string()), "queue": "social-care", "network": network, "public": true }));
        t += SEC;
        let subj = slots.subject.to_lowercase();
        slots.subject = subj;
        let post = fill(self.pick(text::SOCIAL_POSTS), &slots);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "social-hub",
            None,
            json!({ "author": "customer", "text": post, "visibility": "public" }),
        );
        let wait = self.secs(300, 4 * 3600);
        t += wait;
        let agent = self.agent(1);
        slots.agent = Self::agent_name(agent).to_string();
        self.iev(
            &mut cv,
            "interaction.assigned",
            t,
            "social-hub",
            Some(agent),
            json!({ "queue": "social-care", "wait_seconds": wait / SEC }),
        );
        t += self.secs(60, 400);
        let rep = fill(self.pick(text::SOCIAL_REPLIES), &slots);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "social-hub",
            Some(agent),
            json!({ "author": "agent", "text": rep, "visibility": "public" }),
        );
        t += self.secs(300, 3 * 3600);
        let acc = self.account(c);
        let data = json!({ "author": "customer", "text": format!("DM: my account is {acc}. {}", fill(self.pick(tp.customer), &slots)), "visibility": "private" });
        self.iev(&mut cv, "interaction.message", t, "social-hub", None, data);
        t += self.secs(60, 600);
        cv.on = Some(c);
        self.iev(
            &mut cv,
            "interaction.identified",
            t,
            "crm-ui",
            Some(agent),
            json!({ "method": "agent_search", "matched": "account" }),
        );
        let known_at = t;
        let t_case = t + self.secs(60, 200);
        t = t_case + self.secs(60, 600);
        let ans = fill(self.pick(tp.agent), &slots);
        self.iev(
            &mut cv,
            "interaction.message",
            t,
            "social-hub",
            Some(agent),
            json!({ "author": "agent", "text": ans, "visibility": "private" }),
        );
        t += self.secs(60, 1800);
        let data = json!({ "outcome": "completed", "handle_seconds": self.range(300, 1800) });
        self.iev(
            &mut cv,
            "interaction.ended",
            t,
            "social-hub",
            Some(agent),
            data,
        );
        let cause = cv.last.clone();
        self.after_contact(After {
            c: Some(c),
            known_at,
            t_case,
            channel: CH_SOCIAL,
            agent,
            topic,
            ix,
            corr,
            cause,
            reply: None,
            link: None,
            new_cases: true,
            by_rule: false,
            in_call: false,
            void: 0,
        });
    }

    fn video_in(&mut self, t0: i64, c: u32, topic: usize) {
        let ix = self.new_ix(CH_VIDEO);
        let corr = self.corr();
        let tp = &TOPICS[topic];
        let mut cv = Conv {
            ix,
            corr: corr.clone(),
            on: Some(c),
            last: None,
        };
        let mut t = t0;
        let from = match self.some_email(c) {
            Some(e) => identity("email", self.messy_email(&e)),
            None => identity("account", self.account(c)),
        };
        let slots = self.slots(Some(c), 0, t0, topic);
        let data = json!({ "channel": "video", "direction": "inbound", "from": from, "queue": "video-support", "subject": slots.subject, "booking": format!("VB-{}", self.range(100_000, 999_999)) });
        self.iev(
            &mut cv,
            "interaction.started",
            t,
            "video-gateway",
            None,
            data,
        );
        let wait = self.secs(5, 240);
        t += wait;
        let tier = if self.p(0.5) { 1 } else { 2 };
        let agent = self.agent(tier);
        self.iev(
            &mut cv,
            "interaction.assigned",
            t,
            "video-gateway",
            Some(agent),
            json!({ "queue": "video-support", "wait_seconds": wait / SEC }),
        );
        let talk = self.talk_time() + 5 * MIN;
        let t_case = t + talk / 2;
        if self.p(0.5) {
            self.iev(&mut cv, "interaction.message", t + talk / 3, "video-gateway", Some(agent), json!({ "author": "agent", "text": format!("Screen share started: {} setup guide", slots.device) }));
        }
        t += talk;
        let data = json!({ "outcome": "completed", "talk_seconds": talk / SEC, "handle_seconds": talk / SEC + 60, "wrapup_code": "RESOLVED_FCR", "video_quality": self.pick(&["good", "fair", "poor"]) });
        self.iev(
            &mut cv,
            "interaction.ended",
            t,
            "video-gateway",
            Some(agent),
            data,
        );
        let cause = cv.last.clone();
        let _ = tp;
        self.after_contact(After {
            c: Some(c),
            known_at: t0,
            t_case,
            channel: CH_VIDEO,
            agent,
            topic,
            ix,
            corr,
            cause,
            reply: None,
            link: None,
            new_cases: true,
            by_rule: false,
            in_call: true,
            void: 0,
        });
    }

    /// Outbound notifications (bills, reminders) recorded in one event.
    fn notify(&mut self, c: u32) {
        if !self.active(c, self.now) {
            return;
        }
        let t = self.now;
        let (subject_t, body_t) = self.pick(text::NOTIFICATIONS);
        let slots = self.slots(Some(c), 0, t, 0);
        let subject = fill(subject_t, &slots);
        let body = fill(body_t, &slots);
        let sms = self.p(0.5);
        let (ch, to, from) = if sms {
            let p = self.phone(c, 0);
            let country = self.country(c);
            (
                CH_SMS,
                identity("phone", self.messy_phone(&p)),
                identity("phone", people::hotline(country).to_string()),
            )
        } else {
            match self.some_email(c) {
                Some(e) => (
                    CH_EMAIL,
                    identity("email", e),
                    identity("email", NOREPLY_EMAIL.to_string()),
                ),
                None => return,
            }
        };
        let ix = self.new_ix(ch);
        let failed = self.p(0.03);
        let data = json!({
            "channel": CH_NAMES[ch as usize], "direction": "outbound", "from": from, "to": to,
            "subject": subject, "outcome": if failed { "failed" } else { "completed" },
            "ended_at": ts(t + 2 * SEC), "template": format!("tpl-{}", subject_t.len() % 7 + 100), "body": body,
        });
        let ev = Ev {
            ty: "interaction.recorded",
            t,
            src: "notify-service",
            cust: Some(c),
            ix: Some(ix),
            data,
            ..Ev::default()
        };
        self.push(ev, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn profile_update(
        &mut self,
        c: u32,
        t: i64,
        src: &'static str,
        agent: Option<u32>,
        corr: Option<String>,
        cause: Option<String>,
        topic: usize,
    ) {
        let tp = &TOPICS[topic];
        let x = &self.custs[c as usize];
        let cu = &CULTURES[x.culture as usize];
        let initial = x.initial;
        let data = match (tp.subcategory, self.range(0, 6)) {
            ("address_change", _) | ("new_connection", _) | (_, 0) => {
                let city = self.rng.random_range(0..cu.cities.len()) as u8;
                let street = self.rng.random_range(0..cu.streets.len()) as u8;
                let house = self.rng.random_range(1..180);
                let x = &mut self.custs[c as usize];
                x.city = city;
                x.street = street;
                x.house = house;
                json!({ "attributes": { "address": self.address(c), "address_verified": src == "crm-ui" } })
            }
            ("plan_change", _) | ("cancellation", _) => {
                let plan = self.rng.random_range(0..text::PLANS_OFFERED.len()) as u8;
                self.custs[c as usize].plan = plan;
                let mut d = json!({ "attributes": { "plan": text::PLANS_OFFERED[plan as usize], "contract_end": ts(t + 365 * DAY) } });
                if tp.subcategory == "cancellation" {
                    d = json!({ "attributes": { "contract_end": ts(t + 30 * DAY), "retention_flag": true } });
                }
                d
            }
            ("invoice_copy", _) => json!({ "attributes": { "paperless_billing": true } }),
            (_, 1) => {
                json!({ "attributes": { "preferred_channel": self.pick(&["sms", "email", "phone", "whatsapp"]), "contact_hours": "09:00-18:00" } })
            }
            (_, 2) if initial => {
                json!({ "attributes": { "legacy_id": null, "credit_class": null } })
            }
            (_, 3) if self.custs[c as usize].female && self.custs[c as usize].married == 255 => {
                let m = self.rng.random_range(0..cu.last.len()) as u8;
                self.custs[c as usize].married = m;
                json!({ "name": self.name(c), "attributes": { "previous_name": self.plain_name(c) } })
            }
            _ => {
                json!({ "attributes": { "birth_year": null, "marketing_segment": self.pick(&["family", "gamer", "student", "senior", "home_office"]) } })
            }
        };
        self.cev(
            c,
            "customer.profile_updated",
            t,
            src,
            agent,
            corr,
            cause,
            data,
            0,
        );
    }

    /// The name without a married surname (for `previous_name`).
    fn plain_name(&self, c: u32) -> String {
        let (fd, _) = self.first_name(c);
        let (ld, _) = self.last_name(c);
        format!("{fd} {ld}")
    }

    fn change(&mut self, c: u32, kind: Change) {
        if !self.active(c, self.now) {
            return;
        }
        let t = self.now;
        match kind {
            Change::Profile => {
                let (src, agent) = if self.p(0.6) {
                    ("web-portal", None)
                } else {
                    ("crm-ui", Some(self.agent(1)))
                };
                let topic = self.pick_topic();
                self.profile_update(c, t, src, agent, None, None, topic);
            }
            Change::IdentityAdd => self.identity_add(c, t),
            Change::IdentityRemove => {
                let x = &self.custs[c as usize];
                let (phones, emails, share) = (x.phones, x.emails, x.share);
                let target = if phones & 2 != 0 && share & 2 == 0 && phones & 1 != 0 {
                    Some(("phone", 1u8))
                } else if phones & 4 != 0 && phones & 1 != 0 && share & 1 == 0 {
                    Some(("phone", 0))
                } else if emails & 1 != 0 && emails & 2 != 0 && share & 16 == 0 {
                    Some(("email", 0))
                } else if phones & 8 != 0 {
                    Some(("phone", 3))
                } else {
                    None
                };
                match target {
                    Some((kind, slot)) => {
                        let (v, reason) = if kind == "phone" {
                            let p = self.phone(c, slot);
                            (
                                self.messy_phone(&p),
                                if slot == 1 {
                                    "landline cancelled"
                                } else {
                                    "number ported to another provider"
                                },
                            )
                        } else {
                            let e = self.email(c, slot);
                            (self.messy_email(&e), "address no longer in use")
                        };
                        let (src, agent) = if self.p(0.5) {
                            ("web-portal", None)
                        } else {
                            ("crm-ui", Some(self.agent(1)))
                        };
                        self.cev(
                            c,
                            "customer.identity_removed",
                            t,
                            src,
                            agent,
                            None,
                            None,
                            json!({ "identity": identity(kind, v), "reason": reason }),
                            0,
                        );
                        let x = &mut self.custs[c as usize];
                        if kind == "phone" {
                            x.phones &= !(1 << slot);
                        } else {
                            x.emails &= !(1 << slot);
                        }
                    }
                    None => {
                        // Nothing to remove yet: a new number now, the old one later.
                        self.identity_add(c, t);
                        let later = t + self.secs(86400, 3 * 86400);
                        self.schedule(later, Act::Change(c, Change::IdentityRemove));
                    }
                }
            }
            Change::Grant => {
                let ch = self.rng.random_range(0..6) as u8;
                let purpose = self.rng.random_range(0..3) as u8;
                let src = self.pick(&["web-portal", "mobile-app", "crm-ui"]);
                let agent = if src == "crm-ui" {
                    Some(self.agent(1))
                } else {
                    None
                };
                let expires = if self.p(0.3) {
                    t + self.secs(180 * 86400, 720 * 86400)
                } else {
                    NEVER
                };
                self.grant(c, t, src, agent, None, None, ch, purpose, expires, 0);
            }
            Change::Revoke => {
                let held: Vec<(u8, u8)> = self.custs[c as usize]
                    .consents
                    .iter()
                    .filter(|k| k.revoked == NEVER && k.expires > t)
                    .map(|k| (k.ch, k.purpose))
                    .collect();
                if held.is_empty() {
                    self.grant(c, t, "web-portal", None, None, None, 2, 0, NEVER, 0);
                    let later = t + self.secs(86400, 3 * 86400);
                    self.schedule(later, Act::Change(c, Change::Revoke));
                    return;
                }
                let (ch, purpose) = self.pick(&held);
                // The portal syncs some changes in batches.
                let lag = if self.p(0.25) {
                    self.secs(2 * 3600, 8 * 3600)
                } else {
                    0
                };
                self.revoke(c, ch, purpose, "web-portal", None, lag);
            }
        }
    }

    fn identity_add(&mut self, c: u32, t: i64) {
        let x = &self.custs[c as usize];
        let (phones, emails) = (x.phones, x.emails);
        let (kind, v, bit) = if phones & 4 == 0 {
            let p = self.phone(c, 2);
            ("phone", self.messy_phone(&p), (true, 4u8))
        } else if emails & 2 == 0 {
            let e = self.email(c, 1);
            ("email", self.messy_email(&e), (false, 2u8))
        } else if phones & 8 == 0 {
            let p = self.phone(c, 3);
            ("phone", self.messy_phone(&p), (true, 8u8))
        } else {
            return;
        };
        let (src, agent) = if self.p(0.5) {
            ("web-portal", None)
        } else {
            ("crm-ui", Some(self.agent(1)))
        };
        let verified = src == "crm-ui" || self.p(0.5);
        self.cev(
            c,
            "customer.identity_added",
            t,
            src,
            agent,
            None,
            None,
            json!({ "identity": identity(kind, v), "verified": verified }),
            0,
        );
        let x = &mut self.custs[c as usize];
        if bit.0 {
            x.phones |= bit.1;
        } else {
            x.emails |= bit.1;
        }
    }

    fn stranger(&mut self, k: Stranger) {
        let t = self.now;
        match k {
            Stranger::Prospect if self.p(0.3) => self.chat_in(t, None, 9),
            Stranger::Prospect => {
                let topic = if self.p(0.5) { 9 } else { 13 };
                self.call_in(
                    t,
                    None,
                    topic,
                    CallOpts {
                        stranger: Some(k),
                        ..CallOpts::default()
                    },
                )
            }
            _ => {
                let topic = self.pick_topic();
                self.call_in(
                    t,
                    None,
                    topic,
                    CallOpts {
                        stranger: Some(k),
                        ..CallOpts::default()
                    },
                )
            }
        }
    }

    fn test_case(&mut self) {
        let t = self.now;
        let agent = self.agent(1);
        let corr = self.corr();
        let topic = self.pick_topic();
        self.spawn_case(CaseSpec {
            c: None,
            known: false,
            identify_at: NEVER,
            topic,
            t_open: t,
            agent,
            origin: None,
            channel: CH_PHONE,
            reply: None,
            corr,
            cause: None,
            void: VOID_TEST,
            dup_of: 0,
            by_rule: false,
            in_call: false,
        });
    }

    fn merge(&mut self, survivor: u32, merged: u32, by_agent: bool) {
        let t = self.now;
        let (s, m) = (&self.custs[survivor as usize], &self.custs[merged as usize]);
        if s.reg_at > t || m.reg_at > t || s.merged_into != NONE || m.merged_into != NONE {
            return;
        }
        let household = m.role == 2;
        let shared_email = m.share & 16 != 0;
        let (src, agent) = if by_agent {
            ("crm-ui", Some(self.agent(2)))
        } else {
            ("mdm-dedupe", None)
        };
        let reason = if household {
            "dedupe rule: same landline, surname and address"
        } else if by_agent {
            "duplicate record confirmed with the customer on a call"
        } else if shared_email {
            "dedupe rule: same email address and similar name"
        } else {
            "dedupe rule: same mobile number and similar name"
        };
        let score = 0.8 + 0.19 * self.frac();
        let data = json!({ "merged_customer_id": cust_id(merged), "reason": reason, "match_score": (score * 100.0).round() / 100.0, "rule": if by_agent { "manual" } else { "R-12" } });
        self.cev(
            survivor,
            "customer.merged",
            t,
            src,
            agent,
            None,
            None,
            data,
            0,
        );
        self.custs[merged as usize].merged_into = survivor;
    }

    fn unmerge(&mut self, survivor: u32, merged: u32) {
        if self.custs[merged as usize].merged_into != survivor
            || self.custs[survivor as usize].merged_into != NONE
        {
            return;
        }
        let t = self.now;
        let agent = self.agent(2);
        let data = json!({ "merged_customer_id": cust_id(merged), "reason": "different persons sharing a household phone", "ticket": format!("DQ-{}", self.range(10_000, 99_999)) });
        self.cev(
            survivor,
            "customer.unmerged",
            t,
            "crm-ui",
            Some(agent),
            None,
            None,
            data,
            0,
        );
        self.custs[merged as usize].merged_into = NONE;
    }
}

// ------------------------------------------------------------------ cases

impl<'e> Sim<'e> {
    fn after_contact(&mut self, a: After) {
        if let Some(k) = a.link {
            let t = a.t_case;
            self.push(
                Ev {
                    ty: "case.interaction_linked",
                    t,
                    src: "crm-ui",
                    case: Some(k),
                    ix: Some(a.ix),
                    agent: Some(a.agent),
                    corr: Some(a.corr),
                    cause: a.cause,
                    data: json!({ "link_reason": "follow-up contact" }),
                    ..Ev::default()
                },
                0,
            );
            return;
        }
        let spec = |sim: &mut Sim<'_>, topic: usize, t_open: i64, void: u8, dup_of: u64| CaseSpec {
            c: a.c,
            known: a.c.is_some() && a.known_at <= t_open,
            identify_at: if a.c.is_some() && a.known_at > t_open {
                a.known_at
            } else {
                NEVER
            },
            topic,
            t_open,
            agent: a.agent,
            origin: Some(a.ix),
            channel: a.channel,
            reply: a.reply.clone(),
            corr: a.corr.clone(),
            cause: a.cause.clone(),
            void,
            dup_of,
            by_rule: a.by_rule && void == 0 && sim.now >= 0,
            in_call: a.in_call,
        };
        if let Some(c) = a.c {
            let open = self.custs[c as usize].open_case;
            if a.known_at <= a.t_case && open != NONE && self.p(0.6) {
                let t = a.t_case;
                self.push(
                    Ev {
                        ty: "case.interaction_linked",
                        t,
                        src: "crm-ui",
                        case: Some(u64::from(open)),
                        ix: Some(a.ix),
                        agent: Some(a.agent),
                        corr: Some(a.corr.clone()),
                        cause: a.cause.clone(),
                        data: json!({ "link_reason": "customer contacted again about an open case" }),
                        ..Ev::default()
                    },
                    0,
                );
                if self.want(F_DUPCASE, 0.12) {
                    let t_open = t + self.secs(30, 240);
                    let s = spec(self, a.topic, t_open, VOID_DUP, u64::from(open));
                    self.spawn_case(s);
                }
                return;
            }
        }
        if a.void != 0 {
            let t_open = a.t_case + self.secs(20, 120);
            let s = spec(self, a.topic, t_open, a.void, 0);
            self.spawn_case(s);
            return;
        }
        if !a.new_cases || !self.p(TOPICS[a.topic].case_p) {
            return;
        }
        let t_open = a.t_case + self.secs(20, 180);
        let void = if a.c.is_some() && self.want(F_OTHERVOID, 0.005) {
            VOID_OTHER
        } else {
            0
        };
        let mut s = spec(self, a.topic, t_open, void, 0);
        if s.known && void == 0 && self.want(F_CASE_FIRST, 0.04) {
            // The agent files the case first and links the customer after.
            s.known = false;
            s.identify_at = t_open + self.secs(120, 900);
        }
        self.spawn_case(s);
        if self.want(F_TWOCASES, 0.05) {
            let mut other = self.pick_topic();
            if other == a.topic {
                other = (other + 4) % TOPICS.len();
            }
            let t2 = t_open + self.secs(60, 240);
            let s = spec(self, other, t2, 0, 0);
            self.spawn_case(s);
        }
    }

    fn insert_step(st: &mut CaseSt, t: i64, step: Step) {
        let pos = st
            .steps
            .iter()
            .position(|(x, _)| *x > t)
            .unwrap_or(st.steps.len());
        st.steps.insert(pos, (t, step));
    }

    fn spawn_case(&mut self, s: CaseSpec) {
        let no = self.next_case;
        self.next_case += 1;
        let tp = &TOPICS[s.topic];
        let prio = if s.void == VOID_TEST {
            0
        } else {
            self.weighted(&tp.priority) as u8
        };
        let first_h = [24, 8, 4, 1][prio as usize];
        let resolve_h = [120, 72, 24, 8][prio as usize];
        let t0 = s.t_open;
        let mut st = CaseSt {
            no,
            c: s.c,
            known: s.known,
            topic: s.topic as u8,
            prio,
            tier: 1,
            agent: s.agent,
            origin: s.origin,
            channel: s.channel,
            reply: s.reply,
            corr: s.corr,
            last: s.cause,
            opened_at: t0,
            due_first: t0 + first_h * HOUR,
            due_resolve: t0 + resolve_h * HOUR,
            slot_seed: self.rng.random(),
            void: s.void,
            dup_of: s.dup_of,
            by_rule: s.by_rule,
            retried_response: false,
            steps: VecDeque::new(),
        };
        let mut plan: Vec<(i64, Step)> = vec![(t0, Step::Open)];
        if s.void != 0 {
            let dt = match s.void {
                VOID_PRANK | VOID_WRONG => self.secs(300, 5400),
                VOID_DUP => self.secs(1200, 8 * 3600),
                VOID_TEST => self.secs(120, 2400),
                _ => self.secs(3600, 24 * 3600),
            };
            if s.void == VOID_DUP || s.void == VOID_OTHER {
                plan.push((t0 + dt / 3, Step::Assign(self.agent(1))));
                if s.void == VOID_OTHER {
                    plan.push((t0 + dt / 2, Step::Note));
                }
            }
            plan.push((t0 + dt, Step::Void));
        } else {
            let assign = if self.p(0.6) { s.agent } else { self.agent(1) };
            plan.push((t0 + self.secs(0, 900), Step::Assign(assign)));
            if self.want(F_CATEGORIZE, 0.15) {
                plan.push((t0 + self.secs(600, 4 * 3600), Step::Categorize));
            }
            if !s.known && s.identify_at != NEVER {
                plan.push((s.identify_at + self.secs(60, 1200), Step::Identify));
            }
            let can_respond = s.known || s.c.is_some() || st.reply.is_some();
            let in_call = s.in_call && self.p(0.4);
            let first_span = st.due_first - t0;
            let resp = if in_call {
                t0 + self.secs(30, 120)
            } else {
                t0 + (first_span as f64 * (0.05 + 0.95 * self.frac())) as i64
            };
            if can_respond || in_call {
                plan.push((resp, Step::Respond(in_call)));
            }
            let rs_span = st.due_resolve - t0;
            let mut tr = t0 + (rs_span as f64 * (0.1 + 0.95 * self.frac())) as i64;
            tr = tr.max(resp + 10 * MIN);
            if self.want(F_ESCALATE, tp.escalate_p) {
                let te = t0 + ((tr - t0) as f64 * (0.2 + 0.4 * self.frac())) as i64;
                plan.push((te, Step::Escalate(2)));
                plan.push((te + self.secs(300, 3600), Step::Assign(self.agent(2))));
                tr = tr.max(te + 2 * HOUR);
                if self.want(F_ESCALATE3, 0.15) {
                    let te3 = te + ((tr - te) as f64 * (0.3 + 0.4 * self.frac())) as i64;
                    plan.push((te3, Step::Escalate(3)));
                    plan.push((te3 + self.secs(300, 3600), Step::Assign(self.agent(3))));
                    tr = tr.max(te3 + 3 * HOUR);
                }
            }
            for _ in 0..self.range(0, 3) {
                let tn = t0 + ((tr - t0) as f64 * (0.1 + 0.8 * self.frac())) as i64;
                plan.push((tn, Step::Note));
            }
            if s.c.is_some() && self.want(F_FOLLOWUP, 0.2) {
                let tf = resp + ((tr - resp) as f64 * (0.2 + 0.6 * self.frac())) as i64;
                plan.push((tf, Step::FollowUp));
            }
            if can_respond && self.p(0.25) {
                let t2 = resp + ((tr - resp) as f64 * (0.5 + 0.4 * self.frac())) as i64;
                plan.push((t2, Step::Respond(false)));
            }
            plan.push((tr, Step::Resolve));
            let mut last = tr;
            if self.want(F_REOPEN, 0.08) {
                let tro = tr + self.secs(4 * 3600, 3 * 86400);
                plan.push((tro, Step::Reopen));
                if can_respond {
                    plan.push((tro + self.secs(1800, 6 * 3600), Step::Respond(false)));
                }
                last = tro + self.secs(8 * 3600, 2 * 86400);
                plan.push((last, Step::Resolve));
            }
            // Auto-closed 48 hours after the resolution unless the customer
            // comes back.
            plan.push((last + 48 * HOUR + self.secs(0, 6 * 3600), Step::Close));
        }
        // Agents work office hours: night-time steps move to the morning
        // (monotone, so the planned order is kept).
        for (t, step) in plan.iter_mut() {
            if *step != Step::Open && !matches!(step, Step::Respond(true)) {
                *t = self.office_hours(*t);
            }
        }
        plan.sort_by_key(|(t, _)| *t);
        st.steps = plan.into_iter().collect();
        self.schedule(t0, Act::Case(Box::new(st)));
    }

    fn case_slots(&mut self, st: &CaseSt) -> Slots {
        let saved = std::mem::replace(&mut self.rng, Rng8::seed_from_u64(st.slot_seed));
        let mut s = self.slots(st.c, st.agent, st.opened_at, st.topic as usize);
        self.rng = saved;
        s.case = case_id(st.no);
        s
    }

    fn case_ev(
        &mut self,
        st: &mut CaseSt,
        ty: &'static str,
        src: &'static str,
        agent: Option<u32>,
        cust: Option<u32>,
        data: Value,
    ) -> String {
        let t = self.now;
        let id = self.push(
            Ev {
                ty,
                t,
                src,
                cust,
                case: Some(st.no),
                agent,
                corr: Some(st.corr.clone()),
                cause: st.last.clone(),
                data,
                ..Ev::default()
            },
            0,
        );
        st.last = Some(id.clone());
        id
    }

    fn queue_of(st: &CaseSt) -> &'static str {
        let tp = &TOPICS[st.topic as usize];
        match st.tier {
            1 => tp.queue,
            2 => tp.tier2_queue,
            _ => tp.tier3_queue,
        }
    }

    fn case_step(&mut self, mut st: Box<CaseSt>) {
        let Some((_, step)) = st.steps.pop_front() else {
            return;
        };
        self.case_do(&mut st, step);
        if let Some(&(t, _)) = st.steps.front() {
            self.schedule(t.max(self.now), Act::Case(st));
        }
    }

    fn set_open(&mut self, st: &CaseSt, open: bool) {
        if let (Some(c), true) = (st.c, st.known) {
            let x = &mut self.custs[c as usize];
            if open && x.open_case == NONE {
                x.open_case = st.no as u32;
            } else if !open && x.open_case == st.no as u32 {
                x.open_case = NONE;
            }
        }
    }

    fn case_do(&mut self, st: &mut CaseSt, step: Step) {
        let t = self.now;
        let tp = &TOPICS[st.topic as usize];
        match step {
            Step::Open => {
                let slots = self.case_slots(st);
                let test = st.void == VOID_TEST;
                let mut data = json!({
                    "category": if test { "test" } else { tp.category },
                    "subject": if test { "TEST - please ignore".to_string() } else { slots.subject.clone() },
                    "queue": tp.queue,
                    "opened_by": if st.by_rule { "rule" } else { "agent" },
                    "channel": CH_NAMES[st.channel as usize],
                });
                let d = obj(&mut data);
                if !test {
                    d.insert("subcategory".into(), json!(tp.subcategory));
                    d.insert("first_response_due".into(), json!(ts(st.due_first)));
                    d.insert("resolve_due".into(), json!(ts(st.due_resolve)));
                    d.insert(
                        "description".into(),
                        json!(fill(self.pick(tp.customer), &slots)),
                    );
                }
                if st.prio != 1 || self.p(0.5) {
                    d.insert(
                        "priority".into(),
                        json!(["low", "normal", "high", "urgent"][st.prio as usize]),
                    );
                }
                if self.p(0.5) {
                    d.insert("tier".into(), json!(1));
                }
                if let Some(o) = st.origin {
                    if !test {
                        d.insert("origin_interaction_id".into(), json!(ix_id(o)));
                    }
                }
                if let (Some(c), true) = (st.c, st.known) {
                    let mut rel = Map::new();
                    rel.insert("account".into(), json!(self.account(c)));
                    match tp.category {
                        "orders" => {
                            rel.insert("order".into(), json!(slots.order));
                        }
                        "billing" => {
                            rel.insert("invoice".into(), json!(slots.bill));
                            if self.custs[c as usize].has_card {
                                rel.insert("card".into(), json!(self.card(c)));
                            }
                        }
                        "fraud" => {
                            rel.insert("card".into(), json!(self.card(c)));
                        }
                        _ => {}
                    }
                    d.insert("related".into(), Value::Object(rel));
                    d.insert(
                        "language".into(),
                        json!(CULTURES[self.custs[c as usize].culture as usize].code),
                    );
                }
                d.insert(
                    "tags".into(),
                    json!([
                        tp.category,
                        if st.prio >= 2 { "priority" } else { "standard" }
                    ]),
                );
                let (src, agent) = if st.by_rule {
                    ("case-rules", None)
                } else {
                    ("crm-ui", Some(st.agent))
                };
                let cust = if st.known { st.c } else { None };
                self.case_ev(st, "case.opened", src, agent, cust, data);
                self.set_open(st, true);
            }
            Step::Assign(a) => {
                st.agent = a;
                let q = Self::queue_of(st);
                self.case_ev(
                    st,
                    "case.assigned",
                    "crm-ui",
                    Some(a),
                    None,
                    json!({ "queue": q }),
                );
            }
            Step::Categorize => {
                let mut other =
                    (st.topic as usize + 1 + self.rng.random_range(0..TOPICS.len() - 1))
                        % TOPICS.len();
                if other == st.topic as usize {
                    other = (other + 1) % TOPICS.len();
                }
                let prev = format!("{}/{}", tp.category, tp.subcategory);
                st.topic = other as u8;
                let np = &TOPICS[other];
                let agent = st.agent;
                self.case_ev(st, "case.categorized", "crm-ui", Some(agent), None, json!({ "category": np.category, "subcategory": np.subcategory, "previous": prev }));
            }
            Step::Identify => {
                if st.known {
                    return;
                }
                st.known = true;
                let agent = st.agent;
                let c = st.c;
                self.case_ev(
                    st,
                    "case.customer_identified",
                    "crm-ui",
                    Some(agent),
                    c,
                    json!({}),
                );
                self.set_open(st, true);
            }
            Step::Note => {
                let slots = self.case_slots(st);
                let text = if st.void == VOID_OTHER {
                    "Opened on the wrong customer record by mistake; will be voided.".to_string()
                } else {
                    fill(self.pick(tp.notes), &slots)
                };
                let vis = if self.p(0.85) { "internal" } else { "customer" };
                let agent = st.agent;
                self.case_ev(
                    st,
                    "case.note_added",
                    "crm-ui",
                    Some(agent),
                    None,
                    json!({ "text": text, "visibility": vis }),
                );
            }
            Step::Respond(in_call) => self.case_respond(st, in_call),
            Step::FollowUp => {
                if let Some(c) = st.c {
                    if st.known && self.custs[c as usize].merged_into == NONE {
                        self.inbound(c, t, Some(st.no));
                    }
                }
            }
            Step::Escalate(tier) => {
                st.tier = tier;
                let q = Self::queue_of(st);
                let reason = self.pick(text::ESCALATION_REASONS);
                let agent = st.agent;
                self.case_ev(
                    st,
                    "case.escalated",
                    "crm-ui",
                    Some(agent),
                    None,
                    json!({ "to_tier": tier, "reason": reason, "queue": q }),
                );
            }
            Step::Resolve => {
                let slots = self.case_slots(st);
                let (r, code) = self.pick(tp.resolutions);
                let agent = st.agent;
                let breached = t > st.due_resolve;
                self.case_ev(st, "case.resolved", "crm-ui", Some(agent), None, json!({ "resolution": fill(r, &slots), "resolution_code": code, "sla_breached": breached }));
                self.set_open(st, false);
            }
            Step::Reopen => {
                let reason = self.pick(text::REOPEN_REASONS);
                let agent = st.agent;
                self.case_ev(
                    st,
                    "case.reopened",
                    "crm-ui",
                    Some(agent),
                    None,
                    json!({ "reason": reason }),
                );
                self.set_open(st, true);
            }
            Step::Close => {
                if self.p(0.85) {
                    self.case_ev(st, "case.closed", "case-rules", None, None, json!({}));
                } else {
                    let agent = st.agent;
                    self.case_ev(
                        st,
                        "case.closed",
                        "crm-ui",
                        Some(agent),
                        None,
                        json!({ "comment": "confirmed with customer" }),
                    );
                }
                self.set_open(st, false);
            }
            Step::Void => {
                let reason =
                    ["", "prank", "wrong_number", "duplicate", "test", "other"][st.void as usize];
                let mut data = json!({ "reason": reason });
                if st.void == VOID_DUP {
                    obj(&mut data).insert("duplicate_of".into(), json!(case_id(st.dup_of)));
                }
                let comment = match st.void {
                    VOID_PRANK => "Hoax call, caller was abusive",
                    VOID_WRONG => "Caller wanted another company",
                    VOID_DUP => "Same issue already tracked",
                    VOID_TEST => "Training / test ticket",
                    _ => "Created on the wrong customer",
                };
                obj(&mut data).insert("comment".into(), json!(comment));
                let agent = st.agent;
                self.case_ev(st, "case.voided", "crm-ui", Some(agent), None, data);
                self.set_open(st, false);
            }
        }
    }

    fn case_respond(&mut self, st: &mut CaseSt, in_call: bool) {
        let t = self.now;
        let agent = st.agent;
        if in_call {
            let Some(o) = st.origin else { return };
            self.case_ev(st, "case.responded", "crm-ui", Some(agent), None, json!({ "channel": CH_NAMES[st.channel as usize], "interaction_id": ix_id(o), "first": true }));
            return;
        }
        // Who to answer, and how.
        let target: Option<(&'static str, String)> = match (st.c, st.known) {
            (Some(c), true) => {
                let email = self.some_email(c);
                match email {
                    Some(e) if self.p(0.6) => Some(("email", e)),
                    _ => self.some_phone(c).map(|p| ("phone", p)),
                }
            }
            _ => st.reply.clone(),
        };
        let Some((kind, value)) = target else { return };
        let slots = self.case_slots(st);
        let cust = if st.known { st.c } else { None };
        let corr = st.corr.clone();
        let excerpt: String = fill(self.pick(TOPICS[st.topic as usize].agent), &slots)
            .chars()
            .take(140)
            .collect();
        let (ix, channel, ok) = if kind == "email" {
            let ix = self.new_ix(CH_EMAIL);
            let body = fill(self.pick(TOPICS[st.topic as usize].agent), &slots);
            let to = self.messy_email(&value);
            let data = json!({
                "channel": "email", "direction": "outbound",
                "from": identity("email", SUPPORT_EMAIL.to_string()), "to": identity("email", to),
                "subject": format!("Re: [{}] {}", case_id(st.no), slots.subject), "outcome": "completed",
                "ended_at": ts(t + SEC), "body": body,
            });
            self.push(
                Ev {
                    ty: "interaction.recorded",
                    t,
                    src: "crm-ui",
                    cust,
                    ix: Some(ix),
                    agent: Some(agent),
                    corr: Some(corr),
                    cause: st.last.clone(),
                    data,
                    ..Ev::default()
                },
                0,
            );
            (ix, "email", true)
        } else {
            let ix = self.new_ix(CH_PHONE);
            let mut cv = Conv {
                ix,
                corr,
                on: cust,
                last: st.last.clone(),
            };
            let pbx = self.pbx(st.c);
            let country = st.c.map(|c| self.country(c)).unwrap_or("GB");
            let to = self.messy_phone(&value);
            let data = json!({ "channel": "phone", "direction": "outbound", "from": identity("phone", people::hotline(country).to_string()), "to": identity("phone", to), "queue": Self::queue_of(st), "subject": format!("Callback for {}", case_id(st.no)) });
            let at = t + self.jit();
            self.iev(&mut cv, "interaction.started", at, pbx, Some(agent), data);
            let r = self.weighted(&[70, 20, 10]);
            let ring = self.secs(5, 30);
            if r == 0 {
                self.iev(
                    &mut cv,
                    "interaction.assigned",
                    t + ring,
                    pbx,
                    Some(agent),
                    json!({ "queue": Self::queue_of(st), "wait_seconds": 0 }),
                );
                let talk = self.talk_time();
                let data = json!({ "outcome": "completed", "talk_seconds": talk / SEC, "handle_seconds": talk / SEC + 60, "wrapup_code": "CALLBACK_DONE" });
                let at = t + ring + talk + self.jit();
                self.iev(&mut cv, "interaction.ended", at, pbx, Some(agent), data);
                (ix, "phone", true)
            } else {
                let outcome = if r == 1 { "no_answer" } else { "voicemail" };
                let data =
                    json!({ "outcome": outcome, "talk_seconds": 0, "ring_seconds": ring / SEC });
                let at = t + ring + self.secs(20, 40);
                self.iev(&mut cv, "interaction.ended", at, pbx, Some(agent), data);
                (ix, "phone", outcome == "voicemail")
            }
        };
        if ok {
            let data = json!({ "channel": channel, "interaction_id": ix_id(ix), "sla_met": t <= st.due_first, "message_excerpt": excerpt });
            // The response is logged once the message is out.
            let id = self.push(
                Ev {
                    ty: "case.responded",
                    t: t + 2 * MIN,
                    src: "crm-ui",
                    case: Some(st.no),
                    agent: Some(agent),
                    corr: Some(st.corr.clone()),
                    cause: st.last.clone(),
                    data,
                    ..Ev::default()
                },
                0,
            );
            st.last = Some(id);
        } else if !st.retried_response {
            st.retried_response = true;
            let again = t + self.secs(2 * 3600, 4 * 3600);
            Self::insert_step(st, again, Step::Respond(false));
        }
    }
}

// -------------------------------------------------------------- campaigns

impl<'e> Sim<'e> {
    #[allow(clippy::too_many_arguments)]
    fn camp_ev(
        &mut self,
        k: u16,
        ty: &'static str,
        c: Option<u32>,
        agent: Option<u32>,
        src: &'static str,
        cause: Option<String>,
        data: Value,
    ) -> String {
        let t = self.now;
        self.camp_ev_at(k, ty, t, c, agent, src, cause, data)
    }

    #[allow(clippy::too_many_arguments)]
    fn camp_ev_at(
        &mut self,
        k: u16,
        ty: &'static str,
        t: i64,
        c: Option<u32>,
        agent: Option<u32>,
        src: &'static str,
        cause: Option<String>,
        data: Value,
    ) -> String {
        self.push(
            Ev {
                ty,
                t,
                src,
                cust: c,
                camp: Some(k),
                agent,
                cause,
                data,
                ..Ev::default()
            },
            0,
        )
    }

    fn camp_create(&mut self, k: u16) {
        let d = &CAMPAIGNS[k as usize];
        let cp = &self.camps[k as usize];
        let mut data = json!({
            "name": d.name, "channel": d.channel, "purpose": d.purpose,
            "starts_at": ts(cp.starts), "ends_at": ts(cp.ends),
            "owner": match d.purpose { "marketing" => "marketing-team", "collections" => "credit-control", "survey" => "cx-insights", _ => "operations" },
            "description": format!("{} ({} via {})", d.name, d.purpose, d.channel),
            "target_queue": d.queue,
        });
        let o = obj(&mut data);
        if d.max_attempts != 3 {
            o.insert("max_attempts".into(), json!(d.max_attempts));
        }
        if let Some(r) = d.requires {
            o.insert("requires_consent".into(), json!(r));
        }
        if d.purpose == "marketing" {
            o.insert("offer".into(), json!({ "code": format!("PROMO-{}", d.slug.len() * 97), "discount_percent": 20, "plan": "Fibre 1000" }));
        }
        let agent = self.agent(3);
        self.camp_ev(
            k,
            "campaign.created",
            None,
            Some(agent),
            "campaign-manager",
            None,
            data,
        );
    }

    fn requires(&self, k: u16) -> bool {
        let d = &CAMPAIGNS[k as usize];
        d.requires.unwrap_or(d.purpose == "marketing")
    }

    fn attempt_channel(d: &CampDef, phone_attempts: u8) -> &'static str {
        match d.channel {
            "mixed" => {
                if phone_attempts < 2 {
                    "phone"
                } else {
                    "sms"
                }
            }
            other => other,
        }
    }

    fn camp_upload(&mut self, k: u16) {
        let d = &CAMPAIGNS[k as usize];
        let t = self.now;
        let requires = self.requires(k);
        let ch = Self::attempt_channel(d, 0);
        let n = self.custs.len() as u32;
        let mut j = 0i64;
        for c in 0..n {
            if !self.active(c, t) {
                continue;
            }
            let x = &self.custs[c as usize];
            let reachable = match ch {
                "email" => x.emails != 0,
                "social" => x.has_social,
                _ => x.phones & 1 != 0,
            };
            if !reachable {
                continue;
            }
            let consented = self.consent_valid(c, ch, d.consent_purpose, t);
            let p = if !requires || consented {
                d.share
            } else {
                d.share * 0.04
            };
            let mut pick = self.p(p);
            if requires && !consented && !pick && self.forced & (1 << F_VIOLATION) == 0 {
                self.forced |= 1 << F_VIOLATION;
                pick = true;
            }
            if !pick {
                continue;
            }
            let agent = if d.channel == "phone" || d.channel == "mixed" {
                self.agent(1)
            } else {
                NONE
            };
            let revoke_late = k == 0 && consented && self.want(F_REVOKE_LATE, 0.03);
            let st = ContactSt {
                camp: k,
                c,
                agent,
                attempts: 0,
                phone_attempts: 0,
                last_day: 0,
                revoke_late,
                done: false,
            };
            j += 1;
            let at = t + j * self.secs(1, 4);
            self.schedule(at, Act::CampContact(Box::new(st), CStep::Add));
        }
    }

    fn camp_pause(&mut self, k: u16, on: bool) {
        let d = &CAMPAIGNS[k as usize];
        let Some((_, _, why, back)) = d.pause else {
            return;
        };
        let agent = self.agent(3);
        if on {
            self.camp_ev(
                k,
                "campaign.paused",
                None,
                Some(agent),
                "campaign-manager",
                None,
                json!({ "reason": why }),
            );
        } else {
            self.camp_ev(
                k,
                "campaign.resumed",
                None,
                Some(agent),
                "campaign-manager",
                None,
                json!({ "reason": back }),
            );
        }
    }

    fn camp_complete(&mut self, k: u16) {
        let d = &CAMPAIGNS[k as usize];
        self.camp_ev(
            k,
            "campaign.completed",
            None,
            None,
            "campaign-manager",
            None,
            json!({ "reason": d.complete_reason }),
        );
    }

    /// The next time the campaign may contact someone, from `t`: office
    /// hours, outside its pause, before its end.
    fn next_slot(&mut self, k: u16, mut t: i64) -> Option<i64> {
        let (starts, ends, pause) = {
            let c = &self.camps[k as usize];
            (c.starts, c.ends, c.pause)
        };
        t = t.max(starts);
        for _ in 0..4 {
            let day = self.day_start(t);
            let h = (t - day) / HOUR;
            if h < 9 {
                t = day + 9 * HOUR + self.secs(0, 3600);
            } else if h >= 20 {
                t = day + DAY + 9 * HOUR + self.secs(0, 3600);
            }
            if let Some((a, b)) = pause {
                if t >= a && t < b {
                    t = b + self.secs(600, 3600);
                    continue;
                }
            }
            break;
        }
        (t < ends && t < self.end).then_some(t)
    }

    fn contact_identity(&mut self, c: u32, ch: &str) -> Value {
        match ch {
            "email" => {
                let e = self.some_email(c).unwrap_or_else(|| self.email(c, 0));
                identity("email", self.messy_email(&e))
            }
            "social" => identity("social", self.social_handle(c)),
            _ => {
                let p = self.phone(c, 0);
                identity("phone", self.messy_phone(&p))
            }
        }
    }

    fn contact_step(&mut self, mut st: Box<ContactSt>, step: CStep) {
        // Nothing happens in a campaign once it has ended.
        if st.done || self.now >= self.camps[st.camp as usize].ends {
            return;
        }
        let k = st.camp;
        let d = &CAMPAIGNS[k as usize];
        let t = self.now;
        let c = st.c;
        match step {
            CStep::Add => {
                let ch = Self::attempt_channel(d, 0);
                let mut data = json!({ "identity": self.contact_identity(c, ch), "list": format!("upload-{}", DateTime::<Utc>::from_timestamp_millis(t).expect("time").format("%Y%m%d")) });
                if st.agent != NONE {
                    obj(&mut data).insert("agent_id".into(), json!(agent_id(st.agent)));
                }
                if d.purpose == "collections" {
                    obj(&mut data)
                        .insert("balance_due".into(), json!(self.amount(Some(c), 30, 400)));
                }
                self.camp_ev(
                    k,
                    "campaign.contact_added",
                    Some(c),
                    None,
                    "campaign-manager",
                    None,
                    data,
                );
                let window = self.camps[k as usize].ends - self.camps[k as usize].starts;
                let first = self.camps[k as usize].starts.max(t)
                    + (window as f64 * 0.45 * self.frac()) as i64;
                let Some(at) = self.next_slot(k, first) else {
                    return;
                };
                st.last_day = self.day_start(t);
                if st.revoke_late && at - HOUR > t + MIN {
                    let rv = at - self.secs(1800, 3600);
                    let publish = at + self.secs(3600, 4 * 3600);
                    let st2 = ContactSt {
                        camp: k,
                        c,
                        agent: st.agent,
                        attempts: 0,
                        phone_attempts: 0,
                        last_day: st.last_day,
                        revoke_late: false,
                        done: false,
                    };
                    self.schedule(
                        rv,
                        Act::CampContact(Box::new(st2), CStep::Revoke { publish }),
                    );
                }
                self.schedule(at, Act::CampContact(st, CStep::Attempt));
            }
            CStep::Revoke { publish } => {
                // Revoked on the web portal; the portal syncs it hours later,
                // after the dialer has already called.
                let held: Vec<(u8, u8)> = self.custs[c as usize]
                    .consents
                    .iter()
                    .filter(|x| x.purpose == 0 && (x.ch == 0 || x.ch == 5) && x.revoked == NEVER)
                    .map(|x| (x.ch, x.purpose))
                    .collect();
                if let Some(&(ch, p)) = held.first() {
                    self.revoke(c, ch, p, "web-portal", None, publish - t);
                }
            }
            CStep::Reassign => {
                let a = self.agent(1);
                st.agent = a;
                let data = json!({ "reason": self.pick(&["shift change", "workload balancing", "agent on leave", "language skills"]) });
                self.camp_ev(
                    k,
                    "campaign.contact_assigned",
                    Some(c),
                    Some(a),
                    "campaign-manager",
                    None,
                    data,
                );
                let at = t + self.secs(60, 900);
                self.schedule(at, Act::CampContact(st, CStep::Attempt));
            }
            CStep::Attempt => self.attempt(st),
            CStep::Outcome { kind, callback } => {
                let names = [
                    "converted",
                    "interested",
                    "declined",
                    "callback_requested",
                    "do_not_contact",
                    "wrong_person",
                ];
                let mut data = json!({ "outcome": names[kind as usize] });
                let o = obj(&mut data);
                if kind == 0 {
                    let v = match d.purpose {
                        "collections" => self.range(30, 400) as f64 + 0.5,
                        "survey" | "service" => 0.0,
                        _ => (self.range(120, 720) as f64) - 0.12,
                    };
                    if v > 0.0 {
                        o.insert("value".into(), json!(v));
                    }
                    if d.purpose == "survey" {
                        o.insert("nps".into(), json!(self.range(0, 11)));
                    }
                }
                if kind == 3 {
                    o.insert("callback_at".into(), json!(ts(callback)));
                }
                let agent = (st.agent != NONE).then_some(st.agent);
                let src = if agent.is_some() { "dialer" } else { d.src };
                let id = self.camp_ev(
                    k,
                    "campaign.contact_outcome",
                    Some(c),
                    agent,
                    src,
                    None,
                    data,
                );
                match kind {
                    3 => {
                        if let Some(at) = self.next_slot(k, callback) {
                            self.schedule(at, Act::CampContact(st, CStep::Attempt));
                        }
                    }
                    4 => {
                        let ch = Self::attempt_channel(d, st.phone_attempts);
                        let cch = CONSENT_CH.iter().position(|x| *x == ch).unwrap_or(0) as u8;
                        if self.requires(k) && self.consent_valid(c, ch, d.consent_purpose, t) {
                            let src = if d.src == "dialer" { "crm-ui" } else { d.src };
                            let held = self.custs[c as usize]
                                .consents
                                .iter()
                                .find(|x| {
                                    x.purpose == d.consent_purpose
                                        && (x.ch == cch || x.ch == 5)
                                        && x.revoked == NEVER
                                })
                                .map(|x| x.ch);
                            if let Some(ch) = held {
                                self.now = t + 2 * SEC;
                                self.revoke(c, ch, d.consent_purpose, src, Some(id), 0);
                                self.now = t;
                            }
                        }
                    }
                    5 => {
                        let x = &self.custs[c as usize];
                        if x.phones & 4 != 0 && x.phones & 1 != 0 && x.share & 1 == 0 && self.p(0.5)
                        {
                            let p = self.phone(c, 0);
                            let v = self.messy_phone(&p);
                            let agent = self.agent(1);
                            self.cev(c, "customer.identity_removed", t + MIN, "crm-ui", Some(agent), None, Some(id), json!({ "identity": identity("phone", v), "reason": "number belongs to someone else (campaign call)" }), 0);
                            self.custs[c as usize].phones &= !1;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn attempt(&mut self, mut st: Box<ContactSt>) {
        let k = st.camp;
        let d = &CAMPAIGNS[k as usize];
        let t = self.now;
        let c = st.c;
        if t >= self.camps[k as usize].ends {
            return;
        }
        // A new day, sometimes a new agent.
        let day = self.day_start(t);
        if st.agent != NONE && day != st.last_day {
            st.last_day = day;
            if self.want(F_REASSIGN, 0.3) {
                self.schedule(t, Act::CampContact(st, CStep::Reassign));
                return;
            }
        }
        st.last_day = day;
        st.attempts += 1;
        let ch = Self::attempt_channel(d, st.phone_attempts);
        if ch == "phone" {
            st.phone_attempts += 1;
        }
        if self.requires(k) && !self.consent_valid(c, ch, d.consent_purpose, t) {
            self.sum.consent_violations += 1;
        }
        let ident = self.contact_identity(c, ch);
        let corr = self.corr();
        let (result, ix, t_end) = match ch {
            "phone" => {
                let ix = self.new_ix(CH_PHONE);
                let mut cv = Conv {
                    ix,
                    corr,
                    on: Some(c),
                    last: None,
                };
                let r = if self.want(F_INVALID, 0.0) {
                    4
                } else {
                    self.weighted(&[34, 28, 10, 20, 4, 4])
                };
                let result = [
                    "connected",
                    "no_answer",
                    "busy",
                    "voicemail",
                    "invalid_number",
                    "failed",
                ][r];
                let country = self.country(c);
                let start = t + self.jit();
                self.iev(&mut cv, "interaction.started", start, "dialer", None, json!({ "channel": "phone", "direction": "outbound", "from": identity("phone", people::hotline(country).to_string()), "to": ident.clone(), "queue": d.queue, "campaign": camp_id(k), "dial_mode": "predictive" }));
                let ring = self.secs(4, 30);
                let end = if r == 0 {
                    let agent = st.agent;
                    let data = json!({ "queue": d.queue, "wait_seconds": self.range(0, 3) });
                    self.iev(
                        &mut cv,
                        "interaction.assigned",
                        start + ring,
                        "dialer",
                        Some(agent),
                        data,
                    );
                    let talk = self.secs(40, 600);
                    let e = start + ring + talk;
                    self.iev(&mut cv, "interaction.ended", e, "dialer", Some(agent), json!({ "outcome": "completed", "talk_seconds": talk / SEC, "handle_seconds": talk / SEC + 30, "wrapup_code": "CAMPAIGN_CONTACT" }));
                    e
                } else {
                    let outcome = [
                        "completed",
                        "no_answer",
                        "busy",
                        "voicemail",
                        "failed",
                        "failed",
                    ][r];
                    let e = start + ring + if r == 3 { self.secs(20, 40) } else { SEC };
                    self.iev(&mut cv, "interaction.ended", e, "dialer", None, json!({ "outcome": outcome, "talk_seconds": 0, "ring_seconds": ring / SEC, "sip_code": ([200, 480, 486, 200, 404, 503][r]) }));
                    e
                };
                (result, ix, end)
            }
            _ => {
                let chn = match ch {
                    "email" => CH_EMAIL,
                    "sms" => CH_SMS,
                    _ => CH_SOCIAL,
                };
                let ix = self.new_ix(chn);
                let r = match ch {
                    "email" => {
                        if self.want(F_BOUNCE, 0.06) {
                            1
                        } else {
                            self.weighted(&[92, 0, 2])
                        }
                    }
                    "sms" => self.weighted(&[94, 0, 3, 3]),
                    _ => self.weighted(&[97, 0, 3]),
                };
                let result = ["delivered", "bounced", "failed", "invalid_number"][r];
                let from = match ch {
                    "email" => identity("email", OFFERS_EMAIL.to_string()),
                    "social" => identity("social", SOCIAL_ACCOUNT.to_string()),
                    _ => identity("phone", people::hotline(self.country(c)).to_string()),
                };
                let slots = self.slots(Some(c), 0, t, 13);
                let body = match d.purpose {
                    "survey" => format!("Hi {}, how likely are you to recommend Acme Connect to a friend? Reply 0-10. Reply STOP to opt out.", slots.first),
                    "collections" => format!("Acme Connect: your account has an overdue balance of {}. Pay at acmeconnect.example/pay or call us.", slots.amount),
                    _ => format!("Hi {}, {} - upgrade to Fibre 1000 with 20% off for 12 months. Offer ends soon! Unsubscribe: acmeconnect.example/u", slots.first, d.name),
                };
                let data = json!({
                    "channel": ch, "direction": "outbound", "from": from, "to": ident.clone(),
                    "subject": d.name, "outcome": if r == 0 { "completed" } else { "failed" },
                    "ended_at": ts(t + SEC), "campaign": camp_id(k), "body": body,
                });
                self.push(
                    Ev {
                        ty: "interaction.recorded",
                        t,
                        src: d.src,
                        cust: Some(c),
                        ix: Some(ix),
                        corr: Some(corr),
                        data,
                        ..Ev::default()
                    },
                    0,
                );
                (result, ix, t + SEC)
            }
        };
        let agent = if result == "connected" {
            Some(st.agent)
        } else {
            None
        };
        let src = if ch == "phone" { "dialer" } else { d.src };
        let at = t_end + SEC;
        self.camp_ev_at(k, "campaign.attempt_made", at, Some(c), agent, src, None, json!({ "channel": ch, "result": result, "identity": ident, "interaction_id": ix_id(ix), "attempt": st.attempts }));
        // What comes next.
        match result {
            "connected" => {
                let kind = self.phone_outcome(d.purpose);
                let callback = if kind == 3 {
                    self.day_start(t) + self.range(1, 4) * DAY + self.secs(10 * 3600, 18 * 3600)
                } else {
                    0
                };
                let when = t_end + self.secs(5, 60);
                self.schedule(
                    when,
                    Act::CampContact(st, CStep::Outcome { kind, callback }),
                );
            }
            "delivered" => {
                let r = self.frac();
                let kind = match d.purpose {
                    "survey" => {
                        if r < 0.3 {
                            Some(0)
                        } else if r < 0.38 {
                            Some(2)
                        } else if r < 0.42 {
                            Some(4)
                        } else {
                            None
                        }
                    }
                    "collections" => (r < 0.15).then_some(0),
                    _ => {
                        if r < 0.06 {
                            Some(0)
                        } else if r < 0.16 {
                            Some(1)
                        } else if r < 0.19 {
                            Some(2)
                        } else if r < 0.22 {
                            Some(4)
                        } else {
                            None
                        }
                    }
                };
                let kind = kind.or_else(|| {
                    if self.want(F_INTERESTED, 0.0) {
                        Some(1)
                    } else {
                        None
                    }
                });
                match kind {
                    Some(kind) => {
                        let when = t + self.secs(1800, 2 * 86400);
                        self.schedule(
                            when,
                            Act::CampContact(st, CStep::Outcome { kind, callback: 0 }),
                        );
                    }
                    None if st.attempts < d.max_attempts => {
                        let next = t + self.secs(2 * 86400, 5 * 86400);
                        if let Some(at) = self.next_slot(k, next) {
                            self.schedule(at, Act::CampContact(st, CStep::Attempt));
                        }
                    }
                    None => {}
                }
            }
            "no_answer" | "busy" | "voicemail" | "failed" if st.attempts < d.max_attempts => {
                let next = t + self.secs(3 * 3600, 26 * 3600);
                if let Some(at) = self.next_slot(k, next) {
                    self.schedule(at, Act::CampContact(st, CStep::Attempt));
                }
            }
            "invalid_number" if d.channel == "mixed" && st.phone_attempts < 2 => {
                st.phone_attempts = 2;
                let next = t + self.secs(3600, 4 * 3600);
                if let Some(at) = self.next_slot(k, next) {
                    self.schedule(at, Act::CampContact(st, CStep::Attempt));
                }
            }
            _ => {}
        }
    }

    fn phone_outcome(&mut self, purpose: &str) -> u8 {
        if self.want(F_CONVERTED, 0.0) {
            return 0;
        }
        if self.want(F_CALLBACK, 0.0) {
            return 3;
        }
        if self.want(F_DNC, 0.0) {
            return 4;
        }
        if self.want(F_WRONG_PERSON, 0.0) {
            return 5;
        }
        let w: [u32; 6] = match purpose {
            "collections" => [45, 0, 20, 15, 10, 10],
            "service" => [60, 10, 15, 10, 0, 5],
            _ => [22, 20, 33, 12, 6, 7],
        };
        self.weighted(&w) as u8
    }
}
