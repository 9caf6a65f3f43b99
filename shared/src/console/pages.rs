//! The console's pages, rendered on the server (maud escapes every value it is given). Small and
//! readable on a phone (375 px) as on a desktop; one stylesheet, no script.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::Session;
use super::charts::{bars, hour_of};
use crate::app::{Issued, JobHealth};
use crate::domain::{AuditAction, Payment, PaymentStatus};
use crate::ports::Page;

pub const CSS: &str = r#"
:root { color-scheme: light dark; --line: #8886; --accent: #1a5fb4; }
@media (prefers-color-scheme: dark) { :root { --accent: #8ab4f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, sans-serif; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .75rem 1rem;
  border-bottom: 1px solid var(--line); }
header strong { margin-right: auto; }
main { padding: 1rem; max-width: 70rem; margin: 0 auto; }
a { color: var(--accent); }
nav.filters { display: flex; flex-wrap: wrap; gap: .5rem; margin: 0 0 1rem; }
nav.filters a[aria-current] { font-weight: 700; text-decoration: none; }
.payment { border: 1px solid var(--line); border-radius: .5rem; padding: .75rem; margin: 0 0 .75rem; }
.payment dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem .75rem; margin: 0 0 .5rem; }
.payment dt { opacity: .75; }
.payment dd { margin: 0; overflow-wrap: anywhere; }
form.inline { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin: .5rem 0 0; }
label { display: flex; flex-direction: column; font-size: .9rem; }
label.check { flex-direction: row; gap: .4rem; align-items: center; }
.numbers { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .75rem; margin: 0 0 1rem; }
.numbers div { border: 1px solid var(--line); border-radius: .5rem; padding: .5rem .75rem; }
.numbers dt { font-size: .85rem; }
.numbers dd { margin: 0; font-size: 1.4rem; font-weight: 700; }
figure { margin: 0 0 1.5rem; }
figure svg { width: 100%; height: auto; max-width: 28rem; display: block; border-bottom: 1px solid var(--line); }
figure svg text { fill: currentColor; font-size: 10px; }
figure svg rect { fill: var(--accent); }
h2, h3 { margin: 1.25rem 0 .5rem; }
input[type=text], input[type=search] { font: inherit; padding: .4rem; min-width: 12rem; }
.scroll { overflow-x: auto; }
form[role=search] { margin: 0 0 1rem; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
button { font: inherit; padding: .4rem .9rem; cursor: pointer; }
button:focus-visible, a:focus-visible, input:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.notice { padding: .75rem; border-left: 4px solid var(--accent); }
code { overflow-wrap: anywhere; }
"#;

/// Inside Telegram, the launch data is in the URL's fragment, which never reaches the server: the
/// one script of the console reads it and posts it, nothing else.
pub const TELEGRAM_JS: &str = r#"(function () {
  var data = new URLSearchParams(location.hash.slice(1)).get("tgWebAppData");
  var form = document.getElementById("sign-in");
  if (!data || !form) {
    document.getElementById("outside").hidden = false;
    return;
  }
  form.elements.launch_data.value = data;
  form.submit();
})();
"#;

pub(super) fn layout(title: &str, session: Option<&Session>, body: Markup) -> Html<String> {
    layout_with(title, session, None, body)
}

/// `refresh`: the page's `http-equiv="refresh"`: `2` reloads it after two seconds (a run still
/// going), `0;url=…` goes on at once.
fn layout_with(title: &str, session: Option<&Session>, refresh: Option<&str>, body: Markup) -> Html<String> {
    let admin = session.is_some_and(|s| s.role == crate::auth::Role::Admin);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · telegate" }
                link rel="stylesheet" href="/console/console.css";
                // No icon to fetch: the browser would ask for /favicon.ico.
                link rel="icon" href="data:,";
                @if let Some(content) = refresh {
                    meta http-equiv="refresh" content=(content);
                }
            }
            body {
                header {
                    strong { "telegate" }
                    @if let Some(session) = session {
                        a href="/console/payments" { "Payments" }
                        a href="/console/members" { "Members" }
                        @if admin {
                            a href="/console/overview" { "Overview" }
                            a href="/console/audit" { "Audit" }
                            a href="/console/jobs" { "Jobs" }
                        }
                        span { (session.sub) " (" (role_name(session)) ")" }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    Html(page.into_string())
}

fn role_name(session: &Session) -> &'static str {
    match session.role {
        crate::auth::Role::Admin => "admin",
        crate::auth::Role::Support => "support",
        crate::auth::Role::User => "user",
    }
}

/// `oidc`: whether the identity provider's sign-in is set up here.
pub fn signed_out(oidc: bool) -> Html<String> {
    layout(
        "Sign in",
        None,
        html! {
            p { "You are not signed in, or your session has ended." }
            @if oidc {
                p { a href="/console/oidc" { "Sign in with your account" } }
            }
            p { "Inside Telegram, send " code { "/admin" } " to the bot." }
            p { "On the local host, open the one-time sign-in link that " code { "telegate serve" } " printed when it started." }
        },
    )
}

/// Signed in, coming from another site: on to `to`, from a page of ours (its Strict cookie goes
/// with that navigation).
pub fn continue_to(to: &'static str) -> Html<String> {
    let refresh = format!("0;url={to}");
    layout_with("Signed in", None, Some(&refresh), html! { p { a href=(to) { "Continue to the console" } } })
}

pub fn telegram_sign_in() -> Html<String> {
    layout(
        "Signing in",
        None,
        html! {
            form #sign-in method="post" action="/console/telegram" {
                input type="hidden" name="launch_data";
                noscript { p { "This page signs you in inside Telegram; it needs the small script it comes with." } }
            }
            p #outside hidden { "Open the console from the bot inside Telegram (/admin)." }
            script src="/console/telegram.js" {}
        },
    )
}

pub fn problem(title: &str, detail: &str) -> Html<String> {
    layout(title, None, html! { p { (detail) } p { a href="/console/payments" { "Back to the payments" } } })
}

const FILTERS: [(&str, &str); 4] =
    [("transaction_submitted", "To review"), ("validated", "Validated"), ("rejected", "Rejected"), ("all", "All")];

/// `search`: the transaction id looked for, if the page shows what it found.
pub fn payments(
    session: &Session,
    status: Option<PaymentStatus>,
    search: Option<&str>,
    page: &Page<Payment>,
) -> Html<String> {
    let current = if search.is_some() { "" } else { status.map_or("all", PaymentStatus::as_str) };
    layout(
        "Payments",
        Some(session),
        html! {
            nav.filters aria-label="Filter by status" {
                @for (value, label) in FILTERS {
                    @if value == current {
                        a href={ "/console/payments?status=" (value) } aria-current="page" { (label) }
                    } @else {
                        a href={ "/console/payments?status=" (value) } { (label) }
                    }
                }
            }
            form.inline method="get" action="/console/payments" role="search" {
                label { "Transaction id" input type="search" name="tx" value=[search]; }
                button type="submit" { "Find" }
            }
            @if page.items.is_empty() {
                p { "Nothing here." }
            }
            @for p in &page.items {
                section.payment aria-label={ "Payment " (p.id) } {
                    dl {
                        dt { "Transaction" } dd { code { (p.transaction_id) } }
                        dt { "Offer" } dd { (p.offer_id) }
                        dt { "User" } dd { (p.user_id) @if let Some(email) = &p.email { " · " (email) } }
                        dt { "Submitted" } dd { (p.created_at.format("%Y-%m-%d %H:%M UTC")) }
                        dt { "Status" } dd { (p.status.as_str()) }
                        @if let Some(info) = &p.user_info {
                            dt { "Buyer's note" } dd { code { (info) } }
                        }
                        @if let Some(reason) = &p.reject_reason {
                            dt { "Reason" } dd { (reason) }
                        }
                    }
                    @if p.status == PaymentStatus::TransactionSubmitted {
                        form.inline method="post" action={ "/console/payments/" (p.id) "/validate" } {
                            input type="hidden" name="csrf" value=(session.csrf);
                            label { "Notes (support only)" input type="text" name="admin_notes" maxlength="2000"; }
                            button type="submit" { "Validate" }
                        }
                        form.inline method="post" action={ "/console/payments/" (p.id) "/reject" } {
                            input type="hidden" name="csrf" value=(session.csrf);
                            label { "Reason (told to the buyer)" input type="text" name="reason" required maxlength="2000"; }
                            button type="submit" { "Reject" }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next {
                p { a href={ "/console/payments?status=" (current) "&cursor=" (next) } { "Older payments" } }
            }
            p { a href="/console/export/payments.csv" download { "Every payment, as CSV" } }
        },
    )
}

/// The link is shown once, here, as the API shows it once: support may pass it on.
pub fn validated(session: &Session, issued: &Issued) -> Html<String> {
    layout(
        "Payment validated",
        Some(session),
        html! {
            p.notice { "The buyer was notified with their link to the channel." }
            p { "Their link (shown once): " code { (issued.bot_link) } }
            p { "It works until " (issued.expires_at.format("%Y-%m-%d %H:%M UTC")) "." }
            p { a href="/console/payments" { "Back to the payments" } }
        },
    )
}

/// What the audit page shows: one user's entries, or one kind's.
pub struct AuditFilter<'a> {
    pub user: Option<&'a str>,
    pub action: Option<&'a str>,
}

/// The kinds of entry worth watching, as the audit page offers them.
const WATCHED: [(AuditAction, &str); 6] = [
    (AuditAction::TokenRefused, "Refused links"),
    (AuditAction::JoinDeclined, "Leaked invites"),
    (AuditAction::MemberRemoved, "Strangers removed"),
    (AuditAction::StarsCheckoutRefused, "Refused pre-checkouts"),
    (AuditAction::StarsNotOurs, "Stars not sold by us"),
    (AuditAction::PaymentRejected, "Rejected payments"),
];

pub fn audit(
    session: &Session,
    filter: AuditFilter,
    page: &Page<crate::domain::AuditEntry>,
    by_hour: &[crate::ports::HourAttempts],
) -> Html<String> {
    let hours: Vec<(String, i64)> = by_hour.iter().rev().map(|h| (h.hour.clone(), h.total())).collect();
    let more = serde_urlencoded::to_string([
        ("user", filter.user.unwrap_or_default()),
        ("action", filter.action.unwrap_or_default()),
        ("cursor", page.next.as_deref().unwrap_or_default()),
    ])
    .unwrap_or_default();
    layout(
        "Audit log",
        Some(session),
        html! {
            (bars("Suspicious attempts per hour, last 24 hours", &hours, hour_of))
            nav.filters aria-label="Filter by kind" {
                @if filter.action.is_none() {
                    a href="/console/audit" aria-current="page" { "Everything" }
                } @else {
                    a href="/console/audit" { "Everything" }
                }
                @for (action, label) in WATCHED {
                    @let href = format!("/console/audit?action={}", action.as_str());
                    @if filter.action == Some(action.as_str()) {
                        a href=(href) aria-current="page" { (label) }
                    } @else {
                        a href=(href) { (label) }
                    }
                }
            }
            form.inline method="get" action="/console/audit" {
                label { "About one user" input type="text" name="user" value=[filter.user]; }
                button type="submit" { "Show" }
            }
            @if page.items.is_empty() {
                p { "Nothing here." }
            }
            @for e in &page.items {
                section.payment aria-label={ "Entry " (e.id) } {
                    dl {
                        dt { "When" } dd { (e.at.format("%Y-%m-%d %H:%M:%S UTC")) }
                        dt { "What" } dd { (e.action.as_str()) }
                        dt { "Who" } dd { (e.actor) }
                        @if let Some(u) = &e.user_id { dt { "User" } dd { (u) } }
                        @if let Some(t) = e.telegram_user_id { dt { "Telegram" } dd { (t) } }
                        dt { "Details" } dd { code { (e.details) } }
                    }
                }
            }
            @if page.next.is_some() {
                p { a href={ "/console/audit?" (more) } { "Older entries" } }
            }
        },
    )
}

/// `recent`: the latest runs' audit entries (what each processed, whether it got through).
pub fn jobs(session: &Session, jobs: &[JobHealth], recent: &[crate::domain::AuditEntry]) -> Html<String> {
    layout(
        "Jobs",
        Some(session),
        html! {
            @for JobHealth { job, schedule, last_run, overdue } in jobs {
                section.payment aria-label=(job.name()) {
                    dl {
                        dt { "Job" } dd { (job.name()) }
                        dt { "Runs" } dd { (schedule) }
                        dt { "Last run" } dd {
                            @match last_run { Some(at) => (at.format("%Y-%m-%d %H:%M UTC")), None => "never" }
                            @if *overdue { strong { " · overdue" } }
                        }
                    }
                    form.inline method="post" action={ "/console/jobs/" (job.name()) "/run" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" aria-label={ "Run " (job.name()) " now" } { "Run now" }
                    }
                }
            }
            h2 { "Latest runs" }
            @if recent.is_empty() {
                p { "None yet." }
            } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Job" } th scope="col" { "By" } th scope="col" { "Processed" } th scope="col" { "Outcome" } } }
                tbody {
                    @for e in recent {
                        tr {
                            td { (e.at.format("%m-%d %H:%M")) }
                            td { (e.details["job"].as_str().unwrap_or("?")) }
                            td { (e.actor) }
                            td { (e.details["processed"]) }
                            td { (if e.details["complete"] == true { "done" } else { "partly: the rest next time" }) }
                        }
                    }
                }
            } }
            }
        },
    )
}

pub fn job_run(session: &Session, run: &crate::domain::RequestedRun) -> Html<String> {
    use crate::domain::RunStatus;
    let status = match run.status {
        RunStatus::Queued => "queued",
        RunStatus::Running => "running",
        RunStatus::Done => "done",
        RunStatus::Failed => "failed",
    };
    layout_with(
        &format!("Run of {}", run.job.name()),
        Some(session),
        run.is_pending().then_some("2"),
        html! {
            p.notice role="status" { "Status: " strong { (status) } }
            dl {
                dt { "Asked for by" } dd { (run.requested_by) }
                @if let Some(n) = run.processed { dt { "Processed" } dd { (n) } }
                @if let Some(complete) = run.complete { dt { "All done" } dd { (if complete { "yes" } else { "no, the rest next time" }) } }
                @if let Some(error) = &run.error { dt { "Why" } dd { (error) } }
            }
            p { a href="/console/jobs" { "Back to the jobs" } }
        },
    )
}

/// A form that cannot be undone: its reason, and a box to tick.
fn confirm_form(session: &Session, action: &str, user: &str, hidden: &[(&str, String)], label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="user" value=(user);
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            label { "Reason" input type="text" name="reason" required maxlength="500"; }
            label.check { input type="checkbox" name="confirm" value="yes" required; "I confirm: this cannot be undone" }
            button type="submit" { (label) }
        }
    }
}

pub fn members(session: &Session, query: Option<&str>, file: Option<&crate::app::MemberFile>) -> Html<String> {
    use crate::domain::MembershipStatus;
    let admin = session.role == crate::auth::Role::Admin;
    layout(
        "Members",
        Some(session),
        html! {
            form.inline method="get" action="/console/members" role="search" {
                label { "Telegram id, @username or user id" input type="text" name="q" value=[query] required; }
                button type="submit" { "Find" }
            }
            @if let Some(file) = file {
                h2 { "Member " (file.user) }
                @if admin {
                    (confirm_form(session, "/console/members/revoke", file.user.as_str(), &[], "Revoke access"))
                }
                h3 { "Memberships" }
                @for m in &file.memberships {
                    section.payment aria-label={ "Membership " (m.id) } {
                        dl {
                            dt { "Telegram" } dd { (m.telegram_user_id) @if let Some(u) = &m.telegram_username { " · @" (u) } }
                            dt { "Offer" } dd { (m.offer_name) }
                            dt { "Status" } dd { (m.status.as_str()) @if m.in_channel { " · in the channel" } }
                            @if let Some(end) = m.expires_at { dt { "Ends" } dd { (end.format("%Y-%m-%d %H:%M UTC")) } }
                            @if let Some(why) = &m.end_reason { dt { "Ended because" } dd { (why) } }
                        }
                        @if admin && matches!(m.status, MembershipStatus::Revoked | MembershipStatus::Expired) {
                            (confirm_form(session, "/console/members/reinstate", file.user.as_str(),
                                &[("telegram_user_id", m.telegram_user_id.to_string()), ("payment_id", m.payment_id.to_string())],
                                "Reinstate"))
                        }
                    }
                }
                h3 { "Payments" }
                @for p in &file.payments {
                    section.payment aria-label={ "Payment " (p.id) } {
                        dl {
                            dt { "Transaction" } dd { code { (p.transaction_id) } }
                            dt { "Offer" } dd { (p.offer_id) }
                            dt { "Status" } dd { (p.status.as_str()) }
                            dt { "Submitted" } dd { (p.created_at.format("%Y-%m-%d %H:%M UTC")) }
                        }
                        @if admin && p.status == PaymentStatus::Validated {
                            @let label = if p.stars_charge().is_some() { "Refund the Stars" } else { "Record its refund, paid back elsewhere" };
                            (confirm_form(session, &format!("/console/payments/{}/refund", p.id), file.user.as_str(), &[], label))
                        }
                    }
                }
                h3 { "Notifications sent" }
                @if file.notifications.is_empty() {
                    p { "None." }
                }
                @for n in &file.notifications {
                    p {
                        (n.created_at.format("%Y-%m-%d %H:%M UTC")) " · " (n.kind.as_str()) " · " (n.title)
                        @if !n.read { " (unread)" }
                    }
                }
                h3 { "Audit trail" }
                @for e in &file.audit {
                    p { (e.at.format("%Y-%m-%d %H:%M UTC")) " · " (e.action.as_str()) " · " (e.actor) }
                }
            }
        },
    )
}
