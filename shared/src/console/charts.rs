//! Charts drawn on the server as inline SVG (no script), and the numbers they show.

use maud::{Markup, html};

/// An amount in the offers' currency from its smallest unit: `990` is `9.90`.
pub(super) fn money(cents: i64) -> String {
    format!("{}{}.{:02}", if cents < 0 { "-" } else { "" }, cents.abs() / 100, cents.abs() % 100)
}

/// `MM` of `YYYY-MM`.
pub(super) fn month_of(key: &str) -> &str {
    key.get(5..).unwrap_or(key)
}

/// `HH` of `YYYY-MM-DDTHH`.
pub(super) fn hour_of(key: &str) -> &str {
    key.get(11..).unwrap_or(key)
}

/// A bar chart: one bar per point, oldest on the left, each point's key (a month, an hour) with
/// its value in its title and `data-value`, labelled by `label(key)`; the whole chart described
/// for screen readers.
pub(super) fn bars(caption: &str, points: &[(String, i64)], label: fn(&str) -> &str) -> Markup {
    let (width, height, top, bottom) = (360.0_f64, 160.0_f64, 12.0_f64, 24.0_f64);
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let slot = width / points.len().max(1) as f64;
    let summary = points.iter().map(|(m, v)| format!("{m}: {v}")).collect::<Vec<_>>().join(", ");
    html! {
        figure {
            figcaption { (caption) }
            svg viewBox={ "0 0 " (width) " " (height) } role="img" aria-label={ (caption) ". " (summary) } {
                @for (i, (key, value)) in points.iter().enumerate() {
                    @let h = (*value as f64 / max) * (height - top - bottom);
                    @let x = i as f64 * slot + slot * 0.15;
                    rect x=(format!("{x:.1}")) y=(format!("{:.1}", height - bottom - h)) width=(format!("{:.1}", slot * 0.7))
                        height=(format!("{h:.1}")) data-at=(key) data-value=(value) {
                        title { (key) ": " (value) }
                    }
                    text x=(format!("{:.1}", x + slot * 0.35)) y=(format!("{:.1}", height - 8.0)) text-anchor="middle" {
                        (label(key))
                    }
                }
            }
        }
    }
}
