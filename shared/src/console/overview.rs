//! The overview (admins): the numbers and charts of the statistics, and the health panel.

use axum::response::Html;
use maud::{Markup, html};

use super::Session;
use super::charts::{bars, money, month_of};
use super::pages::layout;
use crate::app::HealthView;

/// The health panel: what the bot may do in the channel, Telegram's webhook, the jobs, the backlog.
fn health_panel(health: &HealthView) -> Markup {
    let overdue: Vec<&str> = health.jobs.iter().filter(|j| j.overdue).map(|j| j.job.name()).collect();
    html! {
        h2 { "Health" }
        section.payment aria-label="Health" {
            dl {
                @match &health.channel {
                    Ok(channel) => {
                        @let r = &channel.rights;
                        dt { "Bot in the channel" }
                        dd {
                            @if r.administrator && r.can_invite_users && r.can_restrict_members {
                                "administrator: invites and bans"
                            } @else {
                                strong { "missing rights:" }
                                @if !r.administrator { " administrator" }
                                @if !r.can_invite_users { " invite users" }
                                @if !r.can_restrict_members { " ban users" }
                            }
                        }
                        @let w = &channel.webhook;
                        dt { "Webhook" }
                        dd {
                            @match w.url.as_deref().filter(|u| !u.is_empty()) {
                                Some(url) => { (url) " · " (w.pending_update_count) " waiting" }
                                None => "none registered (long polling)",
                            }
                        }
                        dt { "Telegram's last delivery error" }
                        dd { @match &w.last_error_message { Some(e) => strong { (e) }, None => "none" } }
                    }
                    Err(why) => { dt { "Telegram" } dd { "not read: " (why) } }
                }
                dt { "Channel changes waiting" }
                dd { (health.backlog) @if health.backlog_more { " or more" } }
                dt { "Jobs" }
                dd {
                    @if overdue.is_empty() { "on time" } @else { strong { "overdue: " (overdue.join(", ")) } }
                }
            }
        }
    }
}

/// A number counted up to a bound: `more` when there were more than `counted`.
pub struct Count {
    pub counted: usize,
    pub more: bool,
}

pub fn overview(
    session: &Session,
    stats: &crate::app::StatsView,
    health: &HealthView,
    to_review: Count,
) -> Html<String> {
    let months: Vec<&crate::ports::StarsMonth> = stats.stars.months.iter().rev().collect();
    let series = |f: fn(&crate::ports::StarsMonth) -> i64| -> Vec<(String, i64)> {
        months.iter().map(|m| (m.month.clone(), f(m))).collect()
    };
    let web: Vec<(String, i64)> = stats.web.months.iter().rev().map(|m| (m.month.clone(), m.revenue_cents)).collect();
    let active: Vec<(String, i64)> = stats.members_by_month.iter().rev().map(|m| (m.month.clone(), m.active)).collect();
    let number = |label: &str, value: i64| html! { div { dt { (label) } dd { (value) } } };
    layout(
        "Overview",
        Some(session),
        html! {
            dl.numbers {
                (number("Members active", stats.members.active))
                div { dt { "Payments to review" } dd { (to_review.counted) @if to_review.more { "+" } } }
                (number("Joined this week", stats.members.recent_joins))
                (number("Links waiting", stats.tokens.pending))
                div { dt { "Web this month" } dd { (money(stats.web.months.first().map_or(0, |m| m.revenue_cents))) } }
                div { dt { "Web this month, net" } dd { (money(stats.web.months.first().map_or(0, |m| m.net_cents))) } }
                (number("Stars this month", stats.stars.months.first().map_or(0, |m| m.revenue)))
                (number("Stars this month, net", stats.stars.months.first().map_or(0, |m| m.net)))
                (number("Stars, net", stats.stars.net_total))
                (number("Subscriptions running", stats.stars.active_subscriptions))
                (number("Suspicious, 24 h", stats.attempts.refused_tokens + stats.attempts.declined_joins + stats.attempts.removed_strangers))
            }
            p { a href="/console/export/members.csv" download { "The active members, as CSV" } }
            (bars("Web revenue per month, in cents", &web, month_of))
            (bars("Stars revenue per month, net", &series(|m| m.net), month_of))
            (bars("New subscriptions per month", &series(|m| m.new_subscriptions), month_of))
            (bars("Renewals per month", &series(|m| m.renewals), month_of))
            (bars("Lapsed subscriptions per month", &series(|m| m.lapsed), month_of))
            (bars("Members active per month", &active, month_of))
            (health_panel(health))
        },
    )
}
