//! The money rules, model-based: random sequences of web payments, validations, rejections, Stars
//! purchases (telegate's invoices and not; some whose update Telegram never delivers, which only
//! reconcile-stars finds, and some of those given back before it does), renewals (some lost too),
//! subscriptions cancelled, failed or active again, refunds (carried out, refused, made outside
//! telegate, and a bank's recorded), revokes, removals by a channel administrator, reinstatements
//! (bars lifted), new links (support's and owners'), members made administrators and back, joins,
//! departures, clock steps and every job, over a few Telegram accounts sharing web links (and an
//! administrator and an exempt account), against the fake Bot API. After each step, once the
//! effects are carried out:
//! - nobody is in the channel as a member (an administrator the creator made is in whatever they
//!   hold) without a membership holding the days of a validated payment, not refunded, whose
//!   period (and the grace of a sweep not yet run, or a renewal awaited) is not over;
//! - a member whose paid membership says they are in is in (no paying member locked out);
//! - an account holding a place (active, or paid for and not joined yet: buyers sometimes leave
//!   their invite unused) gets in by a bare `/start`, however long after it paid;
//! - a channel administrator and an account the import kept stay in, whatever they buy or ask;
//! - a payment asked to be refunded never buys anything again, and its days are taken back from
//!   the membership they were in (which lives on only on other payments);
//! - every Star charge of telegate's is one payment, counted once in the revenue; none of the
//!   others is a payment; one whose update was lost is a payment once reconcile-stars has run
//!   (a refunded one, or none when it was given back first);
//! - every payment is in exactly one state.
//!
//! `MODEL_SEQUENCES` sets how many sequences run (500 on SQLite, 8 on DynamoDB by default);
//! a failure prints its seed and steps; `MODEL_SEED=<seed>` replays that one sequence alone;
//! `MODEL_BASE=<n>` runs other sequences than the test command's, `MODEL_STEPS=<n>` longer ones
//! (replay a longer one's seed with the same `MODEL_STEPS`), `MODEL_GRACE_HOURS=<n>` with a grace
//! period (`GRACE_HOURS`; 0 by default).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use telegate_core::domain::{
    AccessToken, Exemption, MembershipStatus, PaymentStatus, TelegramUserId, TokenHash, TokenStatus, UserId,
};
use telegate_core::ports::{Imported, PageRequest, Store};

use crate::support::{CHANNEL, TestApp, updates};
use telegate_testkit::fake_telegram::updates::Renewal;

const OFFERS: &str = r#"{
    "monthly": {"name": "Monthly", "days": 30, "stars": 250, "renewing": true},
    "pass": {"name": "Week pass", "days": 7, "stars": 100},
    "web": {"name": "Web only", "days": 30}
}"#;
const ACCOUNTS: [i64; 3] = [9101, 9102, 9103];
/// A channel administrator, and an account the import kept (exempt): in the channel throughout,
/// whatever they buy or ask.
const ADMIN: i64 = 9108;
const KEPT: i64 = 9109;
const WEB_USERS: [&str; 2] = ["mw1", "mw2"];
const PERIOD: u32 = 2_592_000;
const STEPS: usize = 14;
const JOBS: [&str; 6] = [
    "expire-tokens",
    "expire-subscriptions",
    "expiration-warnings",
    "cleanup-notifications",
    "reconcile-members",
    "reconcile-stars",
];

/// splitmix64: a seed replays its sequence exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// What the sequence did, as the model keeps it (independent of the store).
#[derive(Default)]
struct Model {
    /// Links issued (validation, generate-token): the web user's token.
    tokens: Vec<String>,
    /// Star charges telegate invoiced and Telegram took (or said it took): their Stars.
    ours: HashMap<String, i64>,
    /// Star charges of invoices telegate did not make, and of telegate's given back before
    /// telegate heard of them.
    not_ours: HashSet<String>,
    /// Star charges of telegate's invoices whose update Telegram never delivered: reconcile-stars
    /// turns each into a payment.
    missed: HashMap<String, i64>,
    /// A running subscription's payload, per account.
    subscriptions: HashMap<i64, String>,
    /// Payments a refund was asked for (by an admin).
    refunded: HashSet<String>,
    /// sendMessage calls seen per chat, to act on new invites only.
    seen_messages: HashMap<i64, usize>,
    transactions: u32,
    log: Vec<String>,
}

struct Sequence<'a> {
    app: &'a TestApp,
    store: std::sync::Arc<dyn Store>,
    rng: Rng,
    seed: u64,
    aws: bool,
    /// `GRACE_HOURS`: members are removed that long after their end.
    grace: Duration,
    model: Model,
}

/// A failing sequence tells how to replay it.
impl Drop for Sequence<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "model: seed {} failed; replay with MODEL_SEED={}. Its steps:\n  {}",
                self.seed,
                self.seed,
                self.model.log.join("\n  ")
            );
        }
    }
}

impl Sequence<'_> {
    async fn step(&mut self) {
        let roll = self.rng.below(100);
        let account = self.rng.pick(&ACCOUNTS);
        match roll {
            0..=11 => self.web_payment().await,
            12..=21 => {
                if !self.model.tokens.is_empty() {
                    let token = self.model.tokens[self.rng.below(self.model.tokens.len())].clone();
                    self.say(format!("{account} opens a web link"));
                    assert_eq!(self.app.start_command(account, &token).await, 200);
                    self.maybe_use_invite(account).await;
                }
            }
            22..=31 => self.buy(account, true).await,
            32..=33 => self.buy(account, false).await,
            34..=36 => self.renew(account).await,
            37..=38 => self.subscription_told(account).await,
            39..=41 => self.not_ours(account).await,
            // On SQS a refused refund is received five times, 30 s in all: the SQLite pass has them.
            42..=44 if !self.aws => self.unknown_charge(account).await,
            42..=44 => self.buy(account, false).await,
            45..=51 => self.refund().await,
            52..=55 => self.revoke().await,
            56..=58 => self.reinstate_and_relink().await,
            59 => self.removed_by_an_administrator(account).await,
            60 => self.owner_asks_a_new_link().await,
            61 => self.promoted_or_demoted(account).await,
            62..=65 => {
                if self.app.fake().member_status(account) == "member" {
                    self.say(format!("{account} leaves"));
                    assert_eq!(self.app.webhook(updates::left(self.app.update_id(), CHANNEL, account)).await, 200);
                }
            }
            66..=71 => {
                // Mostly, an account out of the channel on a place it holds, if any.
                let account = match self.out_of_its_place().await {
                    Some(out) if self.rng.below(4) > 0 => out,
                    _ => account,
                };
                let entitled = self.entitled(account).await;
                self.say(format!("{account} sends /start"));
                let update = updates::text(self.app.update_id(), account, "fr", "/start");
                assert_eq!(self.app.webhook(update).await, 200);
                self.use_invite(account).await;
                // A paid period is never lost: whoever holds a place gets in by a bare /start.
                if let Some(m) = entitled {
                    assert!(self.is_in(account), "{account} holds {m} yet is not let in");
                }
            }
            72..=89 => {
                let seconds = self.rng.pick(&[3_600, 86_400, 86_400, 3 * 86_400, 8 * 86_400, 31 * 86_400]);
                self.say(format!("the clock moves {seconds} s"));
                self.app.advance(seconds).await;
            }
            90..=92 => {
                let staff = self.rng.pick(&[ADMIN, KEPT]);
                if self.rng.below(2) == 0 {
                    self.buy(staff, true).await;
                } else {
                    self.say(format!("{staff} sends /start"));
                    assert_eq!(self.app.webhook(updates::text(self.app.update_id(), staff, "fr", "/start")).await, 200);
                    self.use_invite(staff).await;
                }
            }
            _ => {
                let job = self.rng.pick(&JOBS);
                self.say(format!("job {job}"));
                assert_eq!(self.app.run_job(job).await["status"], "done", "{job}");
                if job == "reconcile-stars" {
                    self.app.drain().await;
                    self.heard_of_missed().await;
                    assert!(self.model.missed.is_empty(), "reconcile-stars left {:?} unapplied", self.model.missed);
                }
            }
        }
        self.app.drain().await;
        // The scheduler runs reconcile-stars too, when the clock moves past the hour.
        self.heard_of_missed().await;
    }

    /// Missed charges that reconcile-stars turned into payments become like the others.
    async fn heard_of_missed(&mut self) {
        if self.model.missed.is_empty() {
            return;
        }
        let payments = self.payments().await;
        let heard: Vec<String> = (self.model.missed.keys())
            .filter(|c| payments.iter().any(|p| p.stars_charge() == Some(c.as_str())))
            .cloned()
            .collect();
        for charge in heard {
            let stars = self.model.missed.remove(&charge).expect("a missed charge");
            self.model.ours.insert(charge, stars);
        }
    }

    /// The membership holding `account`'s place (active, or paid for and waiting for the join),
    /// when the account is not barred.
    async fn entitled(&self, account: i64) -> Option<String> {
        let tg = TelegramUserId::parse(account).unwrap();
        let current = self.store.current_membership(tg).await.expect("membership")?;
        let barred = self.store.account_bar(tg).await.expect("bar").is_some();
        (current.holds_place(self.app.now()) && !barred).then(|| format!("{current:?}"))
    }

    /// An account that holds a place and is not in the channel.
    async fn out_of_its_place(&self) -> Option<i64> {
        for account in ACCOUNTS {
            if !self.is_in(account) && self.entitled(account).await.is_some() {
                return Some(account);
            }
        }
        None
    }

    fn say(&mut self, what: String) {
        self.model.log.push(what);
    }

    async fn web_payment(&mut self) {
        let user = self.rng.pick(&WEB_USERS);
        self.model.transactions += 1;
        let tx = format!("TX-M-{}", self.model.transactions);
        let (status, p) = self
            .app
            .post(
                "/api/payments/pending-payments/create/",
                &self.app.jwt(user, "user"),
                json!({"offer_id": "web", "transaction_id": tx}),
            )
            .await;
        assert_eq!(status, 201, "{p}");
        let id = p["id"].as_str().unwrap().to_owned();
        let support = self.app.jwt("s", "support");
        if self.rng.below(4) == 0 {
            self.say(format!("{user} pays on the web ({tx}); support rejects it"));
            let path = format!("/api/payments/admin/pending-payments/{id}/reject/");
            assert_eq!(self.app.post(&path, &support, json!({"reason": "no transfer"})).await.0, 200);
        } else {
            self.say(format!("{user} pays on the web ({tx}); support validates it"));
            let path = format!("/api/payments/admin/pending-payments/{id}/validate/");
            let (status, issued) = self.app.post(&path, &support, json!({})).await;
            assert_eq!(status, 200, "{issued}");
            self.model.tokens.push(issued["token"].as_str().unwrap().to_owned());
        }
    }

    /// `/buy`, the pre-checkout and the payment of a random offer; the invite used. Not `told`:
    /// Telegram never delivers the `successful_payment` (the bot was down past Telegram's
    /// retries), and only reconcile-stars hears of it.
    async fn buy(&mut self, account: i64, told: bool) {
        let offer = self.rng.pick(&["monthly", "pass"]);
        let unheard = if told { "" } else { " (its update will be lost)" };
        self.say(format!("{account} buys {offer} in Stars{unheard}"));
        let Some((payload, stars)) = self.pay_button(account, offer).await else { return };
        let id = format!("pcq-{}", self.app.update_id());
        let query = updates::pre_checkout(self.app.update_id(), account, &id, &payload, stars);
        assert_eq!(self.app.webhook(query).await, 200);
        let answer = self.app.fake().calls_to("answerPreCheckoutQuery");
        let accepted = answer.iter().any(|c| c.params["pre_checkout_query_id"] == json!(id) && c.params["ok"] == true);
        if !accepted {
            self.say("  refused at the pre-checkout".into());
            return;
        }
        let renewing = offer == "monthly";
        let charge = self.take(account, &payload, stars, renewing);
        if renewing {
            self.model.subscriptions.insert(account, payload.clone());
        }
        if !told {
            self.model.missed.insert(charge, i64::from(stars));
            return;
        }
        let renewal = renewing.then(|| Renewal { expires: self.expires(), recurring: true, first: true });
        self.deliver(account, &payload, stars, &charge, renewal).await;
        self.model.ours.insert(charge, i64::from(stars));
        self.maybe_use_invite(account).await;
    }

    /// Telegram takes the Stars, dated by the app's clock (reconcile-stars reads the date).
    fn take(&self, account: i64, payload: &str, stars: u32, renewing: bool) -> String {
        let at = self.app.now().timestamp();
        self.app.fake().take_star_payment_at(account, payload, stars, renewing.then_some(PERIOD), at)
    }

    async fn renew(&mut self, account: i64) {
        let Some(payload) = self.model.subscriptions.get(&account).cloned() else { return };
        let charge = self.take(account, &payload, 250, true);
        if self.rng.below(4) == 0 {
            self.say(format!("Telegram renews {account}'s subscription; the update is lost"));
            self.model.missed.insert(charge, 250);
            return;
        }
        self.say(format!("Telegram renews {account}'s subscription"));
        let renewal = Renewal { expires: self.expires(), recurring: true, first: false };
        self.deliver(account, &payload, 250, &charge, Some(renewal)).await;
        self.model.ours.insert(charge, 250);
        self.use_invite(account).await;
    }

    /// Telegram tells of a subscription's state: cancelled by the subscriber, failed to renew, or
    /// active again (a later renewal may still come, as it may in Telegram).
    async fn subscription_told(&mut self, account: i64) {
        let Some(payload) = self.model.subscriptions.get(&account).cloned() else { return };
        let state = self.rng.pick(&["canceled", "failed", "active"]);
        self.say(format!("Telegram says {account}'s subscription is {state}"));
        let update = updates::subscription(self.app.update_id(), account, &payload, state);
        assert_eq!(self.app.webhook(update).await, 200);
    }

    /// A tip: in the bot's ledger, not telegate's.
    async fn not_ours(&mut self, account: i64) {
        self.say(format!("{account} tips the bot"));
        let charge = self.app.fake().take_star_payment(account, "tip", 1, None);
        self.deliver(account, "tip", 1, &charge, None).await;
        self.model.not_ours.insert(charge);
    }

    /// A payment of telegate's invoice under a charge Telegram does not know: its refund fails.
    async fn unknown_charge(&mut self, account: i64) {
        let Some((payload, stars)) = self.pay_button(account, "pass").await else { return };
        let charge = format!("stxUNKNOWN{}", self.app.update_id());
        self.say(format!("{account} pays a pass under a charge Telegram will not refund ({charge})"));
        self.deliver(account, &payload, stars, &charge, None).await;
        self.model.ours.insert(charge, i64::from(stars));
        self.maybe_use_invite(account).await;
    }

    /// An admin refunds a payment in Stars, or records a manual payment's refund (made at the
    /// bank); or Telegram refunds a charge by another way than telegate's.
    async fn refund(&mut self) {
        if let Some(charge) = self.model.missed.keys().next().cloned()
            && self.rng.below(3) == 0
        {
            return self.refund_unheard(charge).await;
        }
        let payments = self.payments().await;
        if payments.is_empty() {
            return;
        }
        let p = &payments[self.rng.below(payments.len())];
        let Some(charge) = p.stars_charge() else {
            self.say(format!("an admin records the bank's refund of {} ({})", p.id, p.status.as_str()));
            let body = json!({"payment_id": p.id, "reason": "model"});
            let (status, answer) =
                self.app.post("/api/telegram/admin/refund/", &self.app.jwt("root", "admin"), body).await;
            if p.status == PaymentStatus::Validated || p.status.is_refund() {
                assert_eq!((status, answer["refund"].as_str()), (200, Some("refunded")), "{answer}");
                self.model.refunded.insert(p.id.to_string());
            } else {
                assert_eq!(status, 409, "{answer}");
            }
            return;
        };
        if p.status == PaymentStatus::Validated && self.app.fake().took(charge) && self.rng.below(4) == 0 {
            // Given back by another way than telegate's: the reconciliation records it.
            self.say(format!("Telegram refunds {} outside telegate; reconcile-stars runs", p.id));
            self.app.fake().refund_elsewhere(charge);
            assert_eq!(self.app.run_job("reconcile-stars").await["status"], "done");
            self.model.refunded.insert(p.id.to_string());
            return;
        }
        self.say(format!("an admin refunds {} ({})", p.id, p.status.as_str()));
        let body = json!({"payment_id": p.id, "reason": "model"});
        let (status, answer) =
            self.app.post("/api/telegram/admin/stars/refund/", &self.app.jwt("root", "admin"), body).await;
        if p.status == PaymentStatus::Validated || p.status.is_refund() {
            assert_eq!(status, 200, "{answer}");
            self.model.refunded.insert(p.id.to_string());
        } else {
            assert_eq!(status, 409, "{answer}");
        }
    }

    /// A charge telegate never heard of is given back outside telegate: reconcile-stars must
    /// not let anyone in on it. (A scheduled reconciliation may have applied it just before the
    /// refund was listed: then it is a payment, refunded.)
    async fn refund_unheard(&mut self, charge: String) {
        self.say(format!("Telegram refunds {charge}, never heard of, outside telegate; reconcile-stars runs"));
        self.app.fake().refund_elsewhere(&charge);
        assert_eq!(self.app.run_job("reconcile-stars").await["status"], "done");
        self.app.drain().await;
        let stars = self.model.missed.remove(&charge).expect("a missed charge");
        match self.payments().await.into_iter().find(|p| p.stars_charge() == Some(charge.as_str())) {
            Some(p) => {
                assert!(p.status.is_refund(), "{charge} was given back, yet its payment is {}", p.status.as_str());
                self.model.refunded.insert(p.id.to_string());
                self.model.ours.insert(charge, stars);
            }
            None => {
                self.model.not_ours.insert(charge);
            }
        }
    }

    async fn revoke(&mut self) {
        let who = match self.rng.below(2) {
            0 => self.rng.pick(&WEB_USERS).to_owned(),
            _ => format!("tg:{}", self.rng.pick(&ACCOUNTS)),
        };
        self.say(format!("an admin revokes {who}"));
        let body = json!({"user_id": who, "reason": "model"});
        let (status, answer) =
            self.app.post("/api/telegram/revoke-access/", &self.app.jwt("root", "admin"), body).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// A channel administrator removes a member by hand: the account is barred until support
    /// lifts it.
    async fn removed_by_an_administrator(&mut self, account: i64) {
        if self.app.fake().member_status(account) != "member" {
            return;
        }
        self.say(format!("a channel administrator removes {account}"));
        self.app.fake().set_member_status(account, "kicked");
        let update = updates::removed_by_admin(self.app.update_id(), CHANNEL, account, ADMIN);
        assert_eq!(self.app.webhook(update).await, 200);
    }

    /// The creator makes a member an administrator, or an administrator a member again. An
    /// administrator is in whatever their membership; once demoted, they are kept or removed as
    /// anyone.
    async fn promoted_or_demoted(&mut self, account: i64) {
        let (now, update) = match self.app.fake().member_status(account).as_str() {
            "member" => ("administrator", updates::member_promoted(self.app.update_id(), CHANNEL, account)),
            "administrator" => ("member", updates::admin_demoted(self.app.update_id(), CHANNEL, account)),
            _ => return,
        };
        self.say(format!("the creator makes {account} {now}"));
        self.app.fake().set_member_status(account, now);
        assert_eq!(self.app.webhook(update).await, 200);
    }

    /// In the channel: a member, or an administrator the creator made of one.
    fn is_in(&self, account: i64) -> bool {
        matches!(self.app.fake().member_status(account).as_str(), "member" | "administrator")
    }

    /// A web user asks for a new link for one of their payments: only a validated one whose
    /// access is not open gets one; a refunded one never.
    async fn owner_asks_a_new_link(&mut self) {
        let web: Vec<_> = (self.payments().await.into_iter())
            .filter(|p| WEB_USERS.contains(&p.user_id.as_str()) && p.stars_charge().is_none())
            .collect();
        if web.is_empty() {
            return;
        }
        let p = &web[self.rng.below(web.len())];
        self.say(format!("{} asks for a new link for {} ({})", p.user_id, p.id, p.status.as_str()));
        let owner = self.app.jwt(p.user_id.as_str(), "user");
        let (status, answer) =
            self.app.post("/api/telegram/generate-token/", &owner, json!({"payment_id": p.id})).await;
        match status {
            200 => {
                assert_eq!(p.status, PaymentStatus::Validated, "a link only for a validated payment");
                self.model.tokens.push(answer["token"].as_str().unwrap().to_owned());
            }
            409 if p.status.is_refund() => assert_eq!(answer["error"]["code"], "payment_refunded", "{answer}"),
            409 => {}
            _ => panic!("generate-token answered {status}: {answer}"),
        }
    }

    /// Support reinstates a payment (and, one time in two, lifts an account's bar) and issues it a
    /// new link; a refunded one gets neither.
    async fn reinstate_and_relink(&mut self) {
        let payments = self.payments().await;
        if payments.is_empty() {
            return;
        }
        let p = &payments[self.rng.below(payments.len())];
        self.say(format!("support reinstates {} ({}) and asks for a new link", p.id, p.status.as_str()));
        let support = self.app.jwt("s", "support");
        let mut body = json!({"payment_id": p.id, "reason": "model"});
        if self.rng.below(2) == 0 {
            let account = self.rng.pick(&ACCOUNTS);
            self.say(format!("  and lifts {account}'s bar"));
            body["telegram_user_id"] = json!(account);
        }
        let (status, answer) = self.app.post("/api/telegram/admin/reinstate/", &support, body).await;
        let generated = self.app.post("/api/telegram/generate-token/", &support, json!({"payment_id": p.id})).await;
        if p.status.is_refund() {
            assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("payment_refunded")), "{answer}");
            assert_eq!(generated.1["error"]["code"], "payment_refunded", "{}", generated.1);
        } else if generated.0 == 200 {
            assert_eq!(p.status, PaymentStatus::Validated, "a link only for a validated payment");
            self.model.tokens.push(generated.1["token"].as_str().unwrap().to_owned());
        }
    }

    /// A pay button of `offer` shown to `account`: its payload and price.
    async fn pay_button(&mut self, account: i64, offer: &str) -> Option<(String, u32)> {
        assert_eq!(self.app.webhook(updates::text(self.app.update_id(), account, "fr", "/buy")).await, 200);
        let name = if offer == "monthly" { "Monthly" } else { "Week pass" };
        let message = self.last_message(account)?;
        let buttons = message["reply_markup"]["inline_keyboard"].as_array()?.clone();
        self.model.seen_messages.insert(account, self.messages_to(account).len());
        buttons.iter().find_map(|row| {
            let invoice = self.app.fake().invoice(row[0]["url"].as_str()?)?;
            (invoice["title"] == name).then(|| {
                (
                    invoice["payload"].as_str().unwrap().to_owned(),
                    invoice["prices"][0]["amount"].as_u64().unwrap() as u32,
                )
            })
        })
    }

    async fn deliver(&mut self, account: i64, payload: &str, stars: u32, charge: &str, renewal: Option<Renewal>) {
        let paid = updates::StarsPaid { payload, stars, charge, renewal };
        let update = updates::stars_payment(self.app.update_id(), account, self.app.now().timestamp(), paid);
        assert_eq!(self.app.webhook(update).await, 200);
        self.app.drain().await;
    }

    /// The account uses the invite it just got, or (one time in four) not yet: it comes back by
    /// /start later, however long after.
    async fn maybe_use_invite(&mut self, account: i64) {
        if self.rng.below(4) > 0 {
            return self.use_invite(account).await;
        }
        self.app.drain().await;
        self.model.seen_messages.insert(account, self.messages_to(account).len());
        self.say(format!("  {account} does not use its invite yet"));
    }

    /// The account uses an invite the bot just sent it: asks to join, and joins if approved.
    async fn use_invite(&mut self, account: i64) {
        self.app.drain().await;
        if self.app.fake().member_status(account) == "administrator" {
            return; // in the channel already: Telegram has no join request for them
        }
        let messages = self.messages_to(account);
        let seen = self.model.seen_messages.insert(account, messages.len()).unwrap_or(0);
        let link = messages[seen.min(messages.len())..].iter().rev().find_map(|m| {
            let url = m["reply_markup"]["inline_keyboard"][0][0]["url"].as_str()?;
            self.app.fake().invoice(url).is_none().then(|| url.to_owned())
        });
        let Some(link) = link else { return };
        self.say(format!("  {account} asks to join"));
        assert_eq!(self.app.webhook(updates::join_request(self.app.update_id(), CHANNEL, account, &link)).await, 200);
        self.app.drain().await;
        if self.app.fake().member_status(account) == "member" {
            self.say(format!("  {account} joins"));
            let joined = updates::joined(self.app.update_id(), CHANNEL, account, Some(&link));
            assert_eq!(self.app.webhook(joined).await, 200);
        }
    }

    fn messages_to(&self, account: i64) -> Vec<Value> {
        self.app
            .fake()
            .calls_to("sendMessage")
            .into_iter()
            .filter(|c| c.params["chat_id"] == json!(account))
            .map(|c| c.params)
            .collect()
    }

    fn last_message(&self, account: i64) -> Option<Value> {
        self.messages_to(account).pop()
    }

    fn expires(&self) -> i64 {
        self.app.now().timestamp() + i64::from(PERIOD)
    }

    async fn payments(&self) -> Vec<telegate_core::domain::Payment> {
        let page = PageRequest { limit: 100, after: None };
        self.store.list_payments(None, &page).await.expect("payments").items
    }

    /// Per membership, the payments whose days are in it: their tokens that opened or extended
    /// it and were not taken back (a web link's, a Star charge's).
    async fn backing(&self) -> HashMap<String, Vec<String>> {
        let web = self.model.tokens.iter().map(|raw| AccessToken::parse(raw).expect("a link's token").hash());
        let stars = self.model.ours.keys().map(|charge| TokenHash::of_stars_charge(charge));
        let mut backing: HashMap<String, Vec<String>> = HashMap::new();
        for hash in web.chain(stars) {
            let Some(t) = self.store.token(&hash).await.expect("token") else { continue };
            if let (Some(m), false) = (t.membership_id, t.status == TokenStatus::Revoked) {
                backing.entry(m.to_string()).or_default().push(t.payment_id.to_string());
            }
        }
        backing
    }

    /// The invariants, after the effects were carried out.
    async fn check(&self) {
        let now = self.app.now();
        let payments = self.payments().await;
        let by_id: HashMap<String, &telegate_core::domain::Payment> =
            payments.iter().map(|p| (p.id.to_string(), p)).collect();
        assert!(payments.len() < 100, "the model's pages hold every payment");

        // Every payment in exactly one state.
        let mut listed = 0;
        let statuses = [
            PaymentStatus::TransactionSubmitted,
            PaymentStatus::Validated,
            PaymentStatus::Rejected,
            PaymentStatus::RefundRequested,
            PaymentStatus::Refunded,
            PaymentStatus::RefundFailed,
        ];
        for status in statuses {
            let page = PageRequest { limit: 100, after: None };
            let of = self.store.list_payments(Some(status), &page).await.expect("by status").items;
            assert!(of.iter().all(|p| p.status == status), "{status:?} lists another state");
            listed += of.len();
        }
        assert_eq!(listed, payments.len(), "each payment in exactly one state");

        // Every Star charge of telegate's is one payment, counted once; the others none.
        for charge in self.model.ours.keys() {
            let n = payments.iter().filter(|p| p.stars_charge() == Some(charge.as_str())).count();
            assert_eq!(n, 1, "charge {charge}: {n} payments");
        }
        for charge in &self.model.not_ours {
            assert!(payments.iter().all(|p| p.stars_charge() != Some(charge.as_str())), "{charge} is not ours");
        }
        let counters = self.store.counters(now).await.expect("counters");
        assert_eq!(
            counters.stars.revenue_total,
            self.model.ours.values().sum::<i64>(),
            "revenue counts each charge once"
        );

        // A refund asked for is final.
        for id in &self.model.refunded {
            let p = by_id.get(id).unwrap_or_else(|| panic!("refunded payment {id} vanished"));
            assert!(p.status.is_refund(), "payment {id} went back to {}", p.status.as_str());
        }

        // The administrator and the kept account stay in, never removed.
        for (staff, status) in [(ADMIN, "administrator"), (KEPT, "member")] {
            assert_eq!(self.app.fake().member_status(staff), status, "{staff} is no longer {status}");
            assert!(self.app.calls_for_user("banChatMember", staff).is_empty(), "{staff} was removed");
        }

        let backing = self.backing().await;
        for account in ACCOUNTS {
            let tg = TelegramUserId::parse(account).unwrap();
            let current = self.store.current_membership(tg).await.expect("membership");
            let promoted = self.app.fake().member_status(account) == "administrator";
            let in_channel = self.app.fake().member_status(account) == "member";
            let barred = self.store.account_bar(tg).await.expect("bar").is_some();
            if in_channel {
                // No intruder: a membership opened by a validated payment, not over.
                let m = current.as_ref().unwrap_or_else(|| panic!("{account} is in with no membership"));
                assert_eq!(m.status, MembershipStatus::Active, "{account} is in with a {:?} membership", m.status);
                let paid_by = backing.get(m.id.as_str()).map(Vec::as_slice).unwrap_or_default();
                assert!(
                    paid_by.iter().any(|id| by_id.get(id).is_some_and(|p| p.status == PaymentStatus::Validated)),
                    "{account} is in on no validated payment ({paid_by:?})"
                );
                let end = m.expires_at.expect("an active membership has an end");
                // The daily sweep (00:00) may not have run since the end (and its grace); a renewal
                // may be awaited.
                let last_sweep = last_midnight(now);
                assert!(
                    end + self.grace > last_sweep || m.renewal_awaited(last_sweep),
                    "{account} is in past its end {end}: {m:?}"
                );
                assert!(!barred, "{account} is barred yet in");
            }
            // No paying member locked out.
            if let Some(m) = current.as_ref().filter(|m| m.is_active(now) && m.in_channel && !barred) {
                assert!(in_channel || promoted, "{account} paid (membership {}) and is not in the channel", m.id);
            }
            // Nothing lives on a refunded payment alone: its days were taken back.
            for user in owners(account) {
                for m in self.store.memberships_of(&user).await.expect("memberships") {
                    let live = matches!(m.status, MembershipStatus::Active | MembershipStatus::Pending);
                    let paid_by = backing.get(m.id.as_str()).map(Vec::as_slice).unwrap_or_default();
                    let refunded: Vec<&String> =
                        paid_by.iter().filter(|id| self.model.refunded.contains(*id)).collect();
                    assert!(!live || refunded.is_empty(), "membership {} lives on refunded {refunded:?}", m.id);
                }
            }
        }
    }
}

fn owners(account: i64) -> Vec<UserId> {
    let mut users: Vec<UserId> = WEB_USERS.iter().map(|u| UserId::parse(u).unwrap()).collect();
    users.push(UserId::parse(&format!("tg:{account}")).unwrap());
    users
}

fn last_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::seconds(1)
}

/// One sequence; a failure panics after printing its seed and steps.
async fn run_one(seed: u64, aws: bool) {
    // No abuse limit silences /start here: the check that a paid place lets the account in
    // must not meet one (the abuse tests have them).
    let grace = std::env::var("MODEL_GRACE_HOURS").unwrap_or_else(|_| "0".into());
    let mut extra = vec![
        ("GRACE_HOURS", grace.as_str()),
        ("OFFERS", OFFERS),
        ("PAY_SUPPORT_CONTACT", "@support"),
        ("START_INVITES_PER_HOUR", "10000"),
        ("START_FAILURES_PER_HOUR", "10000"),
    ];
    let resources = if aws { crate::support::aws_resources().await } else { Vec::new() };
    extra.extend(resources.iter().map(|(k, v)| (*k, v.as_str())));
    let app = TestApp::spawn_with(&extra).await;
    let store = app.running().ports.store.clone();
    app.fake().set_member_status(ADMIN, "administrator");
    app.fake().set_member_status(KEPT, "member");
    let kept = Exemption { telegram_user_id: TelegramUserId::parse(KEPT).unwrap(), note: "kept".into(), at: app.now() };
    app.importer().await.import(&[Imported::Exempt(kept)]).await.expect("the kept account imported");
    let grace = Duration::hours(grace.parse().expect("MODEL_GRACE_HOURS: hours"));
    let mut sequence = Sequence { app: &app, store, rng: Rng(seed), seed, aws, grace, model: Model::default() };
    let steps = std::env::var("MODEL_STEPS").ok().and_then(|n| n.parse().ok()).unwrap_or(STEPS);
    for _ in 0..steps {
        sequence.step().await;
        sequence.check().await;
    }
}

fn sequences(default: u64) -> u64 {
    std::env::var("MODEL_SEQUENCES").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// `count` sequences from `base`, `PARALLEL` at a time (they wait on I/O, not on the CPU).
async fn run_many(count: u64, aws: bool, base: u64) {
    const PARALLEL: u64 = 16;
    if let Some(seed) = std::env::var("MODEL_SEED").ok().and_then(|s| s.parse().ok()) {
        return run_one(seed, aws).await;
    }
    // Another base explores other sequences than the test command's (`MODEL_BASE=<n>`).
    let base = std::env::var("MODEL_BASE").ok().and_then(|b| b.parse().ok()).unwrap_or(base);
    let seeds: Vec<u64> = (0..count).map(|i| base.wrapping_add(i.wrapping_mul(0x2545_F491_4F6C_DD1D))).collect();
    for batch in seeds.chunks(PARALLEL as usize) {
        let runs: Vec<_> = batch.iter().map(|&seed| tokio::spawn(run_one(seed, aws))).collect();
        for run in runs {
            if let Err(e) = run.await {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_money_sequences_keep_the_channel_equal_to_the_ledger_on_sqlite() {
    run_many(sequences(500), false, 0x5EED_0001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_money_sequences_keep_the_channel_equal_to_the_ledger_on_dynamodb() {
    run_many(sequences(8), true, 0x5EED_D000).await;
}
