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
    Merge { survivor: u32, merged: u32, by_agent: bool },
    Unmerge { survivor: u32, merged: u32 },
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
    identify_at: i64,
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
        slug: "autumn-fibre-upgrade", name: "Autumn Fibre Upgrade", channel: "phone", purpose: "marketing",
        start_f: 0.08, end_f: 0.85, max_attempts: 4, requires: None, share: 0.2,
        pause: Some((0.38, 0.48, "dialer maintenance", "maintenance finished")), consent_purpose: 0,
        queue: "outbound-sales", src: "dialer", complete_reason: "end date reached",
    },
    CampDef {
        slug: "winter-deals", name: "Winter Deals", channel: "email", purpose: "marketing",
        start_f: 0.45, end_f: 1.25, max_attempts: 2, requires: None, share: 0.35,
        pause: None, consent_purpose: 0, queue: "marketing", src: "marketing-hub", complete_reason: "end date reached",
    },
    CampDef {
        slug: "nps-survey-q4", name: "Customer Satisfaction Survey Q4", channel: "sms", purpose: "survey",
        start_f: 0.2, end_f: 0.6, max_attempts: 2, requires: Some(true), share: 0.5,
        pause: None, consent_purpose: 2, queue: "surveys", src: "sms-gateway", complete_reason: "target sample size reached",
    },
    CampDef {
        slug: "overdue-balance", name: "Overdue Balance Reminder", channel: "mixed", purpose: "collections",
        start_f: 0.05, end_f: 1.5, max_attempts: 5, requires: Some(false), share: 0.03,
        pause: Some((0.6, 0.66, "complaint review by compliance", "review completed")), consent_purpose: 1,
        queue: "collections", src: "dialer", complete_reason: "end date reached",
    },
    CampDef {
        slug: "router-recall", name: "AC-Hub 3 Safety Recall", channel: "phone", purpose: "service",
        start_f: 0.3, end_f: 0.9, max_attempts: 3, requires: Some(false), share: 0.02,
        pause: None, consent_purpose: 1, queue: "outbound-service", src: "dialer", complete_reason: "all affected customers contacted",
    },
    CampDef {
        slug: "loyalty-launch", name: "Loyalty Rewards Launch", channel: "social", purpose: "marketing",
        start_f: 0.6, end_f: 0.95, max_attempts: 1, requires: Some(true), share: 0.05,
        pause: None, consent_purpose: 0, queue: "social-care", src: "social-hub", complete_reason: "end date reached",
    },
];

struct Camp {
    starts: i64,
    ends: i64,
    pause: Option<(i64, i64)>,
}

/// Hourly weights of inbound traffic (hour of day, UTC).
const HOURLY: [u32; 24] = [2, 1, 1, 1, 1, 2, 4, 10, 22, 30, 32, 30, 27, 27, 29, 29, 27, 24, 20, 16, 12, 9, 6, 4];

pub(crate) fn run(cfg: &DemoConfig, emit: &mut dyn FnMut(Value)) -> Summary {
    let mut sim = Sim::new(cfg, emit);
    sim.init();
    while let Some(Reverse(item)) = sim.agenda.pop() {
        if item.t >= sim.end {
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
    emit: &'e mut dyn FnMut(Value),
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
        (format!("{stem}ская"), format!("{}aya", ascii.trim_end_matches('y')))
    } else {
        (format!("{display}а"), format!("{ascii}a"))
    }
}

impl<'e> Sim<'e> {
    fn new(cfg: &DemoConfig, emit: &'e mut dyn FnMut(Value)) -> Self {
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
            if top.publish > upto {
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
            (self.emit)(o.value);
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
        format!("trc-{a:016x}")
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
        let value = self.to_value(&ev, &id);
        self.seq += 1;
        self.out.push(Reverse(Out {
            publish,
            seq: self.seq,
            occ: ev.t,
            ty: ev.ty,
            value,
        }));
        id
    }

    fn to_value(&self, ev: &Ev, id: &str) -> Value {
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
        if let Some(c) = &ev.corr {
            m.insert("correlation_id".into(), Value::String(c.clone()));
        }
        if let Some(c) = &ev.cause {
            m.insert("causation_id".into(), Value::String(c.clone()));
        }
        let data = if ev.data.is_null() {
            Value::Object(Map::new())
        } else {
            ev.data.clone()
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
        let d = DateTime::<Utc>::from_timestamp_millis(t).expect("time").weekday();
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
        let first = self.rng.random_range(0..if female { cu.female.len() } else { cu.male.len() }) as u8;
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
            has_social: self.p(0.2),
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
        let n = if x.female { cu.female[x.first as usize] } else { cu.male[x.first as usize] };
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
        let (ld, la) = self.last_name(c);
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
            3 => format!("{}. {}", fa.chars().next().unwrap_or('x').to_ascii_uppercase(), ld),
            _ => base,
        }
    }

    /// Canonical phone of slot `slot` (0 primary mobile, 1 landline, 2-3 added).
    fn phone(&self, c: u32, slot: u8) -> String {
        let x = &self.custs[c as usize];
        let keyed = if x.share & (1 << slot) != 0 { x.owner } else { c };
        let kc = &self.custs[keyed as usize];
        let cu = &CULTURES[kc.culture as usize];
        let plan = if slot == 1 { cu.plans[1] } else { cu.plans[0] };
        people::phone_e164(plan, u64::from(keyed) * 8 + u64::from(slot), self.seed)
    }

    fn email(&self, c: u32, slot: u8) -> String {
        let x = &self.custs[c as usize];
        let keyed = if x.share & (16 << slot) != 0 { x.owner } else { c };
        let kc = &self.custs[keyed as usize];
        let cu = &CULTURES[kc.culture as usize];
        let (_, fa) = self.first_name(keyed);
        let (_, la) = self.last_name(keyed);
        people::email(fa, &la, cu.domains, u64::from(keyed) * 8 + u64::from(slot), self.seed)
    }

    fn primary_phone_slot(&self, c: u32) -> Option<u8> {
        let p = self.custs[c as usize].phones;
        (0..4).find(|s| p & (1 << s) != 0)
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
        let s = if slots.len() > 1 && self.p(0.3) { slots[1] } else { slots[0] };
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
        people::chat_handle(fa, &la, u64::from(c), self.seed)
    }

    fn social_handle(&self, c: u32) -> String {
        let (_, fa) = self.first_name(c);
        let (_, la) = self.last_name(c);
        people::social_handle(fa, &la, u64::from(c), self.seed)
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
        let cur = c.map(|c| CULTURES[self.custs[c as usize].culture as usize].currency).unwrap_or("GBP");
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
            None => ("there".to_string(), "London", "High Street", "Fibre 500", "0000".to_string()),
        };
        let when = DateTime::<Utc>::from_timestamp_millis(t + self.secs(DAY / SEC, 6 * DAY / SEC)).expect("time");
        let month = text::MONTHS[(DateTime::<Utc>::from_timestamp_millis(t - 10 * DAY).expect("time").month0()) as usize];
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
                    let chain = (k == 0 || (role == 1 && k >= 3 && self.p(0.15))) && k + 1 < late.len();
                    if chain {
                        // The next sign-up duplicates this record; it is
                        // merged into it first, then this one into `p`.
                        let j2 = late[k + 1];
                        self.make_related(j2, j, 1);
                        let reg2 = reg + self.secs(2 * 3600, 8 * 3600);
                        self.custs[j2 as usize].reg_at = reg2;
                        self.schedule(reg2, Act::Register(j2));
                        let m1 = reg2 + self.secs(10 * 3600, 30 * 3600);
                        self.schedule(m1, Act::Merge { survivor: j, merged: j2, by_agent: false });
                        let m2 = m1 + self.secs(12 * 3600, 36 * 3600);
                        self.schedule(m2, Act::Merge { survivor: p, merged: j, by_agent });
                        k += 2;
                        continue;
                    }
                    self.schedule(merge_at, Act::Merge { survivor: p, merged: j, by_agent: by_agent && role == 1 });
                    if role == 2 {
                        let un = merge_at + self.secs(12 * 3600, 3 * 24 * 3600);
                        self.schedule(un, Act::Unmerge { survivor: p, merged: j });
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
            self.camps.push(Camp { starts, ends, pause });
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
        let (culture, female, first, last, last2, city, street, house) =
            (src.culture, src.female, src.first, src.last, src.last2, src.city, src.street, src.house);
        let variant = self.rng.random_range(1..4);
        let share_email = self.p(0.5) && src.emails & 1 != 0;
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
            x.first = (first as usize % if x.female { cu.female.len() } else { cu.male.len() }) as u8;
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
            Act::Merge { survivor, merged, by_agent } => self.merge(survivor, merged, by_agent),
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
            if x.reg_at >= day || x.merged_into != NONE {
                continue;
            }
            let a = [0.5, 1.2, 3.5][x.activity as usize];
            let r = self.frac();
            if r < 0.055 * a * w {
                let t = self.time_in_day(day);
                self.schedule(t, Act::Contact(c));
            }
            let r = self.frac();
            if r < 0.02 * w {
                let t = self.office_time(day);
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
                if d > 0 {
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
                let t = self.time_in_day(day);
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

impl Slots {
    /// Slots for text that has none.
    pub fn empty() -> Slots {
        Slots {
            first: String::new(),
            agent: String::new(),
            amount: String::new(),
            month: "",
            plan: "",
            newplan: "",
            device: "",
            order: String::new(),
            date: String::new(),
            speed: 0,
            city: "",
            street: "",
            bill: String::new(),
            last4: String::new(),
            case: String::new(),
            subject: String::new(),
            days: 0,
        }
    }
}
