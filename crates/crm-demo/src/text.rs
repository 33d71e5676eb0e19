//! What customers contact the (fictional) telecom "Acme Connect" about, and
//! the words they and the agents use. Texts are templates with `{slots}`
//! filled per interaction (see [`fill`]).

/// One reason for contact.
pub struct Topic {
    pub category: &'static str,
    pub subcategory: &'static str,
    pub queue: &'static str,
    pub tier2_queue: &'static str,
    pub tier3_queue: &'static str,
    pub weight: u32,
    /// Probability that a contact about this opens a case.
    pub case_p: f64,
    /// Probability that a case about this is escalated.
    pub escalate_p: f64,
    /// Weights of low, normal, high, urgent.
    pub priority: [u32; 4],
    pub ivr: &'static str,
    pub subjects: &'static [&'static str],
    pub customer: &'static [&'static str],
    pub agent: &'static [&'static str],
    pub notes: &'static [&'static str],
    pub resolutions: &'static [(&'static str, &'static str)],
    /// Whether the agent changes the customer's profile while handling it.
    pub profile_change: bool,
}

#[rustfmt::skip]
pub const TOPICS: &[Topic] = &[
    Topic {
        category: "billing", subcategory: "incorrect_charge", queue: "billing", tier2_queue: "billing-tier2", tier3_queue: "billing-disputes",
        weight: 12, case_p: 0.65, escalate_p: 0.12, priority: [5, 70, 22, 3], ivr: "billing",
        subjects: &["Charged twice for {month}", "Unexpected charge of {amount} on my bill", "Bill {bill} is wrong", "Why is my {month} bill so high?"],
        customer: &[
            "Hello, I've just looked at my {month} bill ({bill}) and there is a charge of {amount} that I don't recognise. I haven't changed anything on my {plan} plan. Can you please explain and remove it?",
            "Hi, you charged my card ending {last4} twice this month, {amount} each time. I need one of them refunded as soon as possible, this has left me short.",
            "My bill went up by {amount} without any notice. Nobody told me about a price change on {plan}. I'd like this corrected.",
            "There's a roaming charge on bill {bill} but I haven't left {city} since the summer. Please check.",
        ],
        agent: &[
            "Hi {first}, thanks for getting in touch. I can see the {amount} charge on bill {bill}; it's a one-off fee that was applied in error. I've raised a correction and you'll see a credit on your next bill.",
            "Hello {first}, I'm sorry about the double payment. I've opened a refund request for {amount} to the card ending {last4}; it normally takes 3-5 working days.",
            "Hi {first}, I've checked your account. The increase comes from the annual price review on {plan}, but as you weren't notified I've applied a goodwill credit of {amount}.",
        ],
        notes: &[
            "Customer disputes {amount} on {bill}. Checked usage records: no roaming sessions found. Credit requested.",
            "Duplicate card payment confirmed in payment gateway (two settlements same day). Refund raised.",
            "Price-rise letter not found in correspondence history. Goodwill credit approved under policy B-12.",
        ],
        resolutions: &[("Credit of {amount} applied to next bill", "credit_applied"), ("Refund of {amount} issued to card ending {last4}", "refund_issued"), ("Charge explained: annual price review, customer accepted", "explained")],
        profile_change: false,
    },
    Topic {
        category: "billing", subcategory: "refund_request", queue: "billing", tier2_queue: "billing-tier2", tier3_queue: "billing-disputes",
        weight: 6, case_p: 0.7, escalate_p: 0.15, priority: [10, 75, 15, 0], ivr: "billing",
        subjects: &["Refund for cancelled order {order}", "Refund still not received", "Request for refund of {amount}"],
        customer: &[
            "I returned the {device} from order {order} two weeks ago and I'm still waiting for the refund of {amount}. Can you tell me when it will arrive?",
            "You promised me a refund of {amount} on {date} and nothing has arrived. This is the third time I'm asking.",
            "Please refund the {amount} for the month when my service was not working at all.",
        ],
        agent: &[
            "Hi {first}, I've checked order {order}: the returned {device} was received at our warehouse and the refund of {amount} has now been released. Please allow 3-5 working days.",
            "Hello {first}, apologies for the delay. I've escalated the refund of {amount} to our payments team and marked it as urgent.",
        ],
        notes: &["Return scanned at warehouse, refund not triggered automatically. Manual refund raised.", "Customer chasing refund for the third time; flagged for follow-up in 48h."],
        resolutions: &[("Refund of {amount} processed", "refund_issued"), ("Refund declined: outside the 14-day cooling-off period, explained to customer", "declined")],
        profile_change: false,
    },
    Topic {
        category: "billing", subcategory: "payment_failed", queue: "billing", tier2_queue: "billing-tier2", tier3_queue: "collections",
        weight: 6, case_p: 0.35, escalate_p: 0.05, priority: [10, 80, 10, 0], ivr: "payments",
        subjects: &["Direct debit failed", "Payment declined", "Can't pay my bill online"],
        customer: &[
            "I got a text saying my direct debit for {amount} failed, but there is money in the account. What happened?",
            "I tried to pay bill {bill} online with my card ending {last4} and it keeps getting declined.",
            "Can I pay the {amount} next week instead? I get paid on the 15th.",
        ],
        agent: &[
            "Hi {first}, the bank returned the direct debit with code 'refer to payer'. I've set up a new collection attempt for {date}.",
            "Hello {first}, I've taken the payment of {amount} over the phone and your account is now up to date.",
            "Hi {first}, I've put a payment arrangement in place: {amount} will be collected on {date}.",
        ],
        notes: &["Bank return code ARUDD-0. New collection scheduled.", "Payment arrangement agreed, collections hold for 10 days."],
        resolutions: &[("Payment taken, account up to date", "paid"), ("Payment arrangement set up", "arrangement")],
        profile_change: false,
    },
    Topic {
        category: "billing", subcategory: "invoice_copy", queue: "billing", tier2_queue: "billing-tier2", tier3_queue: "billing-disputes",
        weight: 4, case_p: 0.15, escalate_p: 0.0, priority: [60, 40, 0, 0], ivr: "billing",
        subjects: &["Copy of invoice {bill}", "VAT invoice needed", "Paper bill request"],
        customer: &["Could you send me a copy of invoice {bill}? I need it for my tax return.", "I need a VAT invoice for {month} with my company name on it.", "Please stop the paper bills, I only want them by email."],
        agent: &["Hi {first}, I've sent a copy of {bill} to your email address on file.", "Done, {first}: paper billing is switched off and you'll receive your bills by email from now on."],
        notes: &["Invoice copy re-sent.", "Paperless billing enabled."],
        resolutions: &[("Invoice copy sent", "info_provided")],
        profile_change: true,
    },
    Topic {
        category: "technical", subcategory: "no_connection", queue: "tech-support", tier2_queue: "tech-tier2", tier3_queue: "network-engineering",
        weight: 12, case_p: 0.85, escalate_p: 0.3, priority: [0, 45, 45, 10], ivr: "technical",
        subjects: &["No internet since this morning", "Broadband down in {city}", "Router lights flashing red", "Total loss of service"],
        customer: &[
            "My internet has been down since about 7am. The {device} shows a red light and I've already restarted it twice. I work from home so I need this fixed today.",
            "No broadband at all since yesterday evening. Neighbours on {street} say theirs is down too. Is there an outage in {city}?",
            "The connection drops every few minutes and then doesn't come back for an hour. It's unusable.",
            "Internet is completely dead. I've checked every cable. Please send an engineer.",
        ],
        agent: &[
            "Hi {first}, thanks for your patience. I've run a line test and there's a fault between the cabinet and your property. I've booked an engineer for {date} between 8am and 1pm.",
            "Hello {first}, there's a known outage affecting part of {city}; engineers are on site and the estimated fix time is this evening. I'll keep your ticket open until it's confirmed working.",
            "Hi {first}, I've reset your line profile remotely. Could you restart the {device} and let me know if the connection is stable?",
        ],
        notes: &[
            "Line test: FAIL, loss of sync at 07:02. Engineer appointment booked.",
            "Area outage INC-{order} covers customer's exchange. Linked ticket to the incident.",
            "Remote DSLAM port reset done; sync restored at lower rate. Monitor 48h.",
        ],
        resolutions: &[("Engineer replaced faulty line card at cabinet; service restored", "fixed_field"), ("Area outage resolved; customer confirmed service restored", "outage_resolved"), ("Remote reset fixed the issue", "fixed_remote")],
        profile_change: false,
    },
    Topic {
        category: "technical", subcategory: "slow_speed", queue: "tech-support", tier2_queue: "tech-tier2", tier3_queue: "network-engineering",
        weight: 8, case_p: 0.7, escalate_p: 0.2, priority: [10, 70, 20, 0], ivr: "technical",
        subjects: &["Speed much lower than advertised", "Slow internet in the evenings", "Only getting {speed} Mbps"],
        customer: &[
            "I pay for {plan} but speed tests only show {speed} Mbps, even with a cable plugged straight into the {device}.",
            "Every evening between 7 and 11 the internet crawls. Streaming is impossible.",
            "Since the upgrade last week my speed has halved. What did you change?",
        ],
        agent: &[
            "Hi {first}, I can see your line is syncing at {speed} Mbps, well below what {plan} should give. I've requested a line re-profile, which takes up to 72 hours.",
            "Hello {first}, there is congestion at your local exchange in the evenings. Our network team is adding capacity; I've added your line to the monitoring list.",
        ],
        notes: &["Sync rate {speed} Mbps vs 500 expected. DLM re-profile requested.", "Evening congestion confirmed on backhaul link; capacity upgrade planned."],
        resolutions: &[("Line re-profiled; speed now within guaranteed range", "fixed_remote"), ("Exchange capacity upgraded", "network_fix"), ("Customer's wifi interference; advised mesh extender", "advice")],
        profile_change: false,
    },
    Topic {
        category: "technical", subcategory: "device_setup", queue: "tech-support", tier2_queue: "tech-tier2", tier3_queue: "network-engineering",
        weight: 6, case_p: 0.4, escalate_p: 0.1, priority: [30, 65, 5, 0], ivr: "technical",
        subjects: &["Help setting up my {device}", "Wifi password not working", "Can't connect the TV box"],
        customer: &[
            "I've received the new {device} but I can't get it to connect. The instructions say to wait for a white light, it's been orange for an hour.",
            "How do I change the wifi name and password on the {device}?",
            "The TV box says 'no network' even though the internet works fine on my laptop.",
        ],
        agent: &[
            "Hi {first}, let's do this together: please press and hold the reset button on the {device} for 10 seconds, then wait 5 minutes.",
            "Hello {first}, you can change the wifi name at http://192.168.1.1 with the admin password printed on the back of the {device}. I've also emailed you a step-by-step guide.",
        ],
        notes: &["Walked customer through factory reset; device provisioned.", "Sent setup guide KB-1042."],
        resolutions: &[("Device set up with customer on video call", "fixed_remote"), ("Guide sent, customer completed setup", "advice")],
        profile_change: false,
    },
    Topic {
        category: "technical", subcategory: "mobile_roaming", queue: "tech-support", tier2_queue: "tech-tier2", tier3_queue: "network-engineering",
        weight: 4, case_p: 0.5, escalate_p: 0.1, priority: [5, 70, 25, 0], ivr: "mobile",
        subjects: &["No mobile signal abroad", "Roaming not working in {city}", "Data not working on holiday"],
        customer: &["I'm abroad and my phone shows no service. Roaming is switched on in the settings.", "Mobile data doesn't work here even though calls do. I'm on {plan}."],
        agent: &["Hi {first}, roaming was not enabled on your account; I've switched it on now. Please restart your phone.", "Hello {first}, please select the partner network manually in your phone settings; automatic selection sometimes picks a network we have no agreement with."],
        notes: &["Roaming bar removed from SIM profile.", "Customer advised manual network selection."],
        resolutions: &[("Roaming enabled", "fixed_remote"), ("Advised manual network selection", "advice")],
        profile_change: false,
    },
    Topic {
        category: "orders", subcategory: "delivery_status", queue: "orders", tier2_queue: "orders-tier2", tier3_queue: "logistics",
        weight: 6, case_p: 0.4, escalate_p: 0.08, priority: [20, 70, 10, 0], ivr: "orders",
        subjects: &["Where is my order {order}?", "Delivery of {device} missed", "Order {order} not delivered"],
        customer: &[
            "I ordered a {device} ({order}) ten days ago and it still hasn't arrived. The tracking hasn't changed since Monday.",
            "The courier says they delivered order {order} but I've received nothing.",
            "Can I change the delivery address for {order}? I'll be at work on {date}.",
        ],
        agent: &[
            "Hi {first}, the courier has your parcel at the local depot; it will be delivered on {date}.",
            "Hello {first}, I've opened an investigation with the courier and arranged a replacement {device} in case the parcel is lost.",
        ],
        notes: &["Courier confirms parcel held at depot. Redelivery booked.", "Proof of delivery shows wrong house number. Replacement dispatched."],
        resolutions: &[("Order delivered", "delivered"), ("Replacement dispatched", "replacement")],
        profile_change: false,
    },
    Topic {
        category: "orders", subcategory: "new_connection", queue: "sales", tier2_queue: "orders-tier2", tier3_queue: "logistics",
        weight: 5, case_p: 0.6, escalate_p: 0.05, priority: [15, 80, 5, 0], ivr: "sales",
        subjects: &["New connection at {street}", "Moving home - need broadband", "Order {plan}"],
        customer: &["I'm moving to {street}, {city} on {date} and need broadband from day one. What can I get there?", "I'd like to order {plan} for my new flat."],
        agent: &["Hi {first}, great news: {plan} is available at your new address. I've booked the activation for {date}.", "Hello {first}, your order {order} is confirmed; the {device} will be delivered two days before activation."],
        notes: &["Address check OK for FTTP. Activation booked.", "New connection order {order} placed."],
        resolutions: &[("Service activated on {date}", "activated")],
        profile_change: true,
    },
    Topic {
        category: "orders", subcategory: "cancellation", queue: "retention", tier2_queue: "retention-tier2", tier3_queue: "executive-complaints",
        weight: 5, case_p: 0.75, escalate_p: 0.1, priority: [5, 75, 20, 0], ivr: "cancel",
        subjects: &["Cancel my contract", "Notice of cancellation", "I want to leave"],
        customer: &[
            "I want to cancel my {plan} contract. I've found a cheaper offer elsewhere.",
            "Please treat this message as my 30 days' notice. I'm moving abroad.",
            "After three weeks without a working connection I want to cancel without any penalty.",
        ],
        agent: &[
            "Hi {first}, I'm sorry to hear you want to leave. Before I process this, I can offer you {newplan} at {amount} a month for 12 months. Would that change your mind?",
            "Hello {first}, I've processed your cancellation; your service will end on {date} and there are no early termination fees.",
        ],
        notes: &["Retention offer: {newplan} at {amount}. Customer to consider.", "Cancellation processed, ETF waived due to service failure."],
        resolutions: &[("Customer accepted retention offer", "retained"), ("Contract cancelled as requested", "cancelled")],
        profile_change: true,
    },
    Topic {
        category: "account", subcategory: "address_change", queue: "general", tier2_queue: "general-tier2", tier3_queue: "executive-complaints",
        weight: 5, case_p: 0.3, escalate_p: 0.0, priority: [40, 60, 0, 0], ivr: "account",
        subjects: &["Change of address", "New billing address", "Update my details"],
        customer: &["I've moved to {street}, {city}. Please update my billing address.", "Can you change my contact details? My new address is {street}, {city}."],
        agent: &["Hi {first}, your address has been updated to {street}, {city}.", "Done, {first}. Your next bill will go to the new address."],
        notes: &["Address updated after security check.", "Billing address changed; service address unchanged."],
        resolutions: &[("Address updated", "updated")],
        profile_change: true,
    },
    Topic {
        category: "account", subcategory: "password_reset", queue: "general", tier2_queue: "general-tier2", tier3_queue: "fraud-investigations",
        weight: 6, case_p: 0.1, escalate_p: 0.0, priority: [40, 60, 0, 0], ivr: "account",
        subjects: &["Locked out of my account", "Password reset not arriving", "Can't log in to the app"],
        customer: &["I'm locked out of My Acme after too many attempts. The reset email never arrives.", "The app keeps saying my password is wrong, I've reset it twice."],
        agent: &["Hi {first}, I've unlocked your account and sent a new reset link; it's valid for 30 minutes.", "Hello {first}, the reset emails were going to an old address. I've sent the link to the one you just confirmed."],
        notes: &["Account unlocked after ID&V.", "Reset email bounced, old address on file."],
        resolutions: &[("Account unlocked", "fixed_remote")],
        profile_change: false,
    },
    Topic {
        category: "account", subcategory: "plan_change", queue: "sales", tier2_queue: "retention-tier2", tier3_queue: "executive-complaints",
        weight: 6, case_p: 0.45, escalate_p: 0.02, priority: [25, 75, 0, 0], ivr: "sales",
        subjects: &["Upgrade to {newplan}", "Change my mobile plan", "Add TV to my package"],
        customer: &["I'd like to upgrade from {plan} to {newplan}. How much would it cost?", "Can I move to a cheaper plan? I don't use all my data.", "I want to add TV Essentials to my package."],
        agent: &["Hi {first}, I've upgraded you to {newplan} from {date}; your new monthly price is {amount}.", "Hello {first}, done: you're now on {newplan}. The change shows on your next bill."],
        notes: &["Plan change {plan} -> {newplan} effective {date}.", "Customer eligible for loyalty price; applied."],
        resolutions: &[("Plan changed to {newplan}", "plan_changed")],
        profile_change: true,
    },
    Topic {
        category: "complaints", subcategory: "service_quality", queue: "complaints", tier2_queue: "complaints-tier2", tier3_queue: "executive-complaints",
        weight: 5, case_p: 0.9, escalate_p: 0.35, priority: [0, 40, 50, 10], ivr: "complaints",
        subjects: &["Formal complaint", "Terrible service - third time calling", "Complaint about engineer visit"],
        customer: &[
            "This is my third call about the same fault. Every time I'm promised a callback and nobody calls. I want to make a formal complaint.",
            "The engineer didn't turn up on {date} and I took a day off work for it. I expect compensation.",
            "I was on hold for 55 minutes and then cut off. This is unacceptable.",
        ],
        agent: &[
            "Hi {first}, I'm really sorry for the experience you've had. I've logged a formal complaint and a manager will contact you within 48 hours.",
            "Hello {first}, I've applied {amount} compensation for the missed appointment and rebooked the engineer for {date}.",
        ],
        notes: &["Formal complaint logged. Repeat contact x3 in 10 days.", "Missed appointment confirmed by field team; compensation applied per policy."],
        resolutions: &[("Apology and {amount} compensation accepted", "compensation"), ("Complaint upheld; root cause fixed", "upheld"), ("Complaint not upheld; explained", "not_upheld")],
        profile_change: false,
    },
    Topic {
        category: "fraud", subcategory: "suspicious_activity", queue: "fraud", tier2_queue: "fraud-investigations", tier3_queue: "fraud-investigations",
        weight: 2, case_p: 0.95, escalate_p: 0.5, priority: [0, 10, 40, 50], ivr: "fraud",
        subjects: &["Someone ordered a phone on my account", "SIM swap I didn't request", "Suspicious login alert"],
        customer: &[
            "I got an email confirming an order for a {device} that I never made. Someone has got into my account!",
            "My phone suddenly lost signal and I got a message that my SIM was replaced. I didn't ask for this.",
            "There are calls to premium numbers on my bill that I never made.",
        ],
        agent: &[
            "Hi {first}, I've blocked the order and secured your account. Our fraud team will contact you within 24 hours.",
            "Hello {first}, I've reversed the SIM swap and added a security PIN to your account.",
        ],
        notes: &["Order {order} cancelled; account flagged for fraud review.", "SIM swap reversed. Password reset forced. Referred to fraud team."],
        resolutions: &[("Fraudulent order cancelled and account secured", "fraud_confirmed"), ("No fraud found: order placed by a family member", "no_fraud")],
        profile_change: false,
    },
];

#[rustfmt::skip]
pub const PLANS_OFFERED: &[&str] = &["Fibre 100", "Fibre 500", "Fibre 1000", "Mobile 10GB", "Mobile Unlimited", "Fibre 500 + TV", "Home Essentials", "Business Fibre 300"];
#[rustfmt::skip]
pub const DEVICES: &[&str] = &["AC-Hub 3 router", "AC-Hub 4 router", "mesh extender", "TVX-2 set-top box", "iPhone 15", "Galaxy S24", "Pixel 8", "5G home router"];
#[rustfmt::skip]
pub const MONTHS: &[&str] = &["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

#[rustfmt::skip]
pub const AGENT_NAMES: &[&str] = &[
    "Priya", "Tom", "Sarah", "Ahmed", "Laura", "Kevin", "Marta", "Jonas", "Chloé", "Dmitri", "Mei", "Carlos", "Fatima", "Ben",
    "Olga", "Liam", "Sofia", "Raj", "Hannah", "Mateo", "Aisha", "Luca", "Nina", "Oscar",
];

#[rustfmt::skip]
pub const TRANSFER_REASONS: &[&str] = &[
    "needs technical specialist", "billing dispute above agent limit", "customer asked for a supervisor",
    "wrong queue selected in IVR", "retention offer required", "fraud suspected", "language: needs native speaker",
];
#[rustfmt::skip]
pub const ESCALATION_REASONS: &[&str] = &[
    "line test failed, field engineer required", "refund above tier-1 approval limit", "customer requested a manager",
    "repeat contact within 7 days", "suspected network fault in the area", "possible account takeover", "SLA at risk",
    "regulator complaint threatened",
];
#[rustfmt::skip]
pub const REOPEN_REASONS: &[&str] = &[
    "customer reports the fault is back", "credit did not appear on the bill", "replacement device also faulty",
    "customer not satisfied with the resolution", "refund bounced back",
];
#[rustfmt::skip]
pub const WRAPUP: &[&str] = &["RESOLVED_FCR", "INFO_PROVIDED", "CASE_OPENED", "CASE_UPDATED", "CALLBACK_SCHEDULED", "SALE", "NO_ACTION"];

#[rustfmt::skip]
pub const BOT_GREETINGS: &[&str] = &[
    "Hi! I'm Ava, Acme Connect's virtual assistant. What can I help you with today?",
    "Hello and welcome to Acme Connect chat. Please tell me briefly what your question is about.",
];
#[rustfmt::skip]
pub const BOT_HANDOFF: &[&str] = &[
    "Thanks. I'm connecting you to one of our advisers, the current wait is about {days} minutes.",
    "I'll pass you to a member of our team who can help with that. Please stay in the chat.",
];
#[rustfmt::skip]
pub const AGENT_GREETINGS: &[&str] = &[
    "Hi {first}, my name is {agent}, thanks for waiting. Let me have a look at this for you.",
    "Hello, you're chatting with {agent}. Could you confirm your account number and the first line of your address, please?",
    "Good to meet you {first}, {agent} here. I'm reading through your message now.",
];
#[rustfmt::skip]
pub const CUSTOMER_THANKS: &[&str] = &[
    "Great, thank you for your help!", "OK thanks. I'll wait and see.", "Thanks {agent}, that's sorted then.",
    "Fine, but please make sure it actually happens this time.", "perfect thx",
];
#[rustfmt::skip]
pub const SOCIAL_POSTS: &[&str] = &[
    "@AcmeConnect {subject}. Been waiting all day, sort it out!",
    "@AcmeConnect hi, {subject} - can anyone help? DMs open",
    "Honestly @AcmeConnect, {subject}. Worst provider ever.",
    "@AcmeConnect {subject} #fail",
];
#[rustfmt::skip]
pub const SOCIAL_REPLIES: &[&str] = &[
    "Hi {first}, sorry to hear that! Please send us a DM with your account number and postcode and we'll look into it straight away. ^{agent}",
    "Hey {first}, we're on it. Check your DMs please. ^{agent}",
];
#[rustfmt::skip]
pub const NOTIFICATIONS: &[(&str, &str)] = &[
    ("Your {month} bill is ready", "Hi {first}, your Acme Connect bill {bill} for {amount} is ready. It will be collected on {date}."),
    ("Engineer appointment reminder", "Reminder: our engineer will visit on {date} between 8am and 1pm. Reply R to reschedule."),
    ("Your order {order} has shipped", "Good news {first}! Your {device} is on its way and will arrive on {date}."),
    ("Payment received", "Thanks {first}, we've received your payment of {amount}."),
    ("Data usage alert", "You've used 80% of your monthly data on {plan}. Top up in the Acme app."),
];
#[rustfmt::skip]
pub const VOICEMAILS: &[&str] = &[
    "Hi, it's {first} calling about my bill, please call me back on this number. Thanks.",
    "Hello, this is {first}, my internet is down again, please ring me back as soon as you can.",
];
#[rustfmt::skip]
pub const CALL_SUMMARIES: &[&str] = &[
    "Auto-summary: customer called about '{subject}'. Agent checked the account and explained next steps.",
    "Transcript excerpt: \"...so the credit will show on the next bill, is there anything else I can help with?\"",
];

/// Values for the `{slots}` of one conversation.
pub struct Slots {
    pub first: String,
    pub agent: String,
    pub amount: String,
    pub month: &'static str,
    pub plan: &'static str,
    pub newplan: &'static str,
    pub device: &'static str,
    pub order: String,
    pub date: String,
    pub speed: u32,
    pub city: &'static str,
    pub street: &'static str,
    pub bill: String,
    pub last4: String,
    pub case: String,
    pub subject: String,
    pub days: u32,
}

/// Fills `{slot}` placeholders of a template.
pub fn fill(template: &str, s: &Slots) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &after[..close];
        match key {
            "first" => out.push_str(&s.first),
            "agent" => out.push_str(&s.agent),
            "amount" => out.push_str(&s.amount),
            "month" => out.push_str(s.month),
            "plan" => out.push_str(s.plan),
            "newplan" => out.push_str(s.newplan),
            "device" => out.push_str(s.device),
            "order" => out.push_str(&s.order),
            "date" => out.push_str(&s.date),
            "speed" => out.push_str(&s.speed.to_string()),
            "city" => out.push_str(s.city),
            "street" => out.push_str(s.street),
            "bill" => out.push_str(&s.bill),
            "last4" => out.push_str(&s.last4),
            "case" => out.push_str(&s.case),
            "subject" => out.push_str(&s.subject),
            "days" => out.push_str(&s.days.to_string()),
            _ => {
                out.push('{');
                out.push_str(key);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}
