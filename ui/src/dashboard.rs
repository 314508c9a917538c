//! The analysts' dashboard: the day-by-day aggregates as SVG charts with axes and labels,
//! read again every two seconds so the numbers move as events arrive.

use crate::api::Api;
use crate::pages::{Screen, authed};
use dioxus::prelude::*;
use serde_json::Value;

/// How often the dashboard reads the aggregates again.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;
const RIGHT: f64 = 12.0;

/// A round upper bound for an axis, and its tick step.
fn axis_max(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 0.25);
    }
    let magnitude = 10f64.powf(max.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude / 2.0)
        .find(|s| max / s <= 5.0)
        .unwrap_or(magnitude);
    ((max / step).ceil() * step, step)
}

fn label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One series of a chart.
#[derive(Clone, PartialEq)]
struct Series {
    name: &'static str,
    class: &'static str,
    values: Vec<f64>,
}

/// A chart of daily values: lines, or bars for a single series.
#[component]
fn DayChart(
    id: &'static str,
    title: &'static str,
    days: Vec<String>,
    series: Vec<Series>,
    bars: bool,
) -> Element {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    let (top, step) = axis_max(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = days.len().max(1) as f64;
    let x = move |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n;
    let y = move |v: f64| TOP + plot_h * (1.0 - v / top);
    let ticks: Vec<f64> = (0..=((top / step).round() as usize))
        .map(|i| i as f64 * step)
        .collect();
    let every = (days.len() / 7).max(1);
    rsx! {
        figure { class: "chart", id: "{id}",
            figcaption { "{title}" }
            svg {
                view_box: "0 0 {WIDTH} {HEIGHT}",
                role: "img",
                "aria-label": "{title}",
                for t in ticks {
                    line { class: "gridline", x1: "{LEFT}", x2: "{WIDTH - RIGHT}", y1: "{y(t)}", y2: "{y(t)}" }
                    text { class: "tick", x: "{LEFT - 6.0}", y: "{y(t) + 4.0}", text_anchor: "end", "{label(t)}" }
                }
                line { class: "axis", x1: "{LEFT}", x2: "{LEFT}", y1: "{TOP}", y2: "{HEIGHT - BOTTOM}" }
                line { class: "axis", x1: "{LEFT}", x2: "{WIDTH - RIGHT}", y1: "{HEIGHT - BOTTOM}", y2: "{HEIGHT - BOTTOM}" }
                for (i, day) in days.iter().enumerate() {
                    if i % every == 0 || i + 1 == days.len() {
                        text { class: "tick", x: "{x(i)}", y: "{HEIGHT - 10.0}", text_anchor: "middle", "{day.get(5..).unwrap_or(day)}" }
                    }
                }
                for s in series.iter() {
                    if bars {
                        for (i, v) in s.values.iter().enumerate() {
                            rect {
                                class: "bar {s.class}",
                                x: "{x(i) - plot_w / n * 0.35}",
                                y: "{y(*v)}",
                                width: "{plot_w / n * 0.7}",
                                height: "{(HEIGHT - BOTTOM - y(*v)).max(0.0)}",
                                title { "{days[i]}: {label(*v)}" }
                            }
                        }
                    } else {
                        polyline {
                            class: "line {s.class}",
                            fill: "none",
                            points: s.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect::<Vec<_>>().join(" "),
                        }
                        for (i, v) in s.values.iter().enumerate() {
                            circle { class: "dot {s.class}", cx: "{x(i)}", cy: "{y(*v)}", r: "3",
                                title { "{s.name} {days[i]}: {label(*v)}" }
                            }
                        }
                    }
                }
            }
            if series.len() > 1 {
                p { class: "legend",
                    for s in series.iter() {
                        span { class: "key {s.class}", "{s.name}" }
                    }
                }
            }
        }
    }
}

fn column(days: &[Value], field: &str) -> Vec<f64> {
    days.iter()
        .map(|d| d[field].as_f64().unwrap_or(0.0))
        .collect()
}

/// The dashboard screen.
#[component]
pub fn Dashboard(
    api: Api,
    session: Signal<Option<crate::api::Session>>,
    screen: Signal<Screen>,
) -> Element {
    let mut data = use_signal(|| None::<Value>);
    let mut error = use_signal(|| None::<String>);
    use_future(move || {
        let api = api.clone();
        async move {
            loop {
                let loaded = authed(&api, session, screen, |token| {
                    let api = api.clone();
                    async move { api.dashboard(&token, 14).await }
                })
                .await;
                match loaded {
                    Ok(v) => {
                        error.set(None);
                        data.set(Some(v));
                    }
                    Err(f) => error.set(Some(f.message)),
                }
                tokio::time::sleep(REFRESH).await;
            }
        }
    });
    let Some(d) = data() else {
        return rsx! {
            section { class: "dashboard",
                h1 { "Dashboard" }
                p { class: "muted", "Loading…" }
                if let Some(msg) = error() { p { class: "error", role: "alert", "{msg}" } }
            }
        };
    };
    let days_json = d["days"].as_array().cloned().unwrap_or_default();
    let days: Vec<String> = days_json
        .iter()
        .map(|x| x["day"].as_str().unwrap_or("").to_string())
        .collect();
    let today = days_json.last().cloned().unwrap_or_default();
    let total = |field: &str| column(&days_json, field).iter().sum::<f64>();
    let plans: Vec<(String, f64)> = d["active_by_plan"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default();
    let active: f64 = plans.iter().map(|(_, n)| n).sum();
    let mrr = format!(
        "{:.2} {}",
        d["mrr_minor"].as_f64().unwrap_or(0.0) / 100.0,
        d["currency"].as_str().unwrap_or("")
    );
    let churn = format!("{:.1}%", d["churn_rate"].as_f64().unwrap_or(0.0) * 100.0);
    let top_today: Vec<Value> = d["top_titles"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|x| x["day"] == today["day"])
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let plan_names: Vec<String> = plans.iter().map(|(p, _)| p.clone()).collect();
    let plan_counts: Vec<f64> = plans.iter().map(|(_, n)| *n).collect();
    rsx! {
        section { class: "dashboard",
            h1 { "Dashboard" }
            div { class: "tiles",
                div { class: "tile", span { class: "muted", "Signups today" } strong { id: "signups-today", "{label(today[\"signups\"].as_f64().unwrap_or(0.0))}" } }
                div { class: "tile", span { class: "muted", "Plays today" } strong { id: "plays-today", "{label(today[\"plays\"].as_f64().unwrap_or(0.0))}" } }
                div { class: "tile", span { class: "muted", "Watch hours (14 days)" } strong { id: "watch-hours", "{label((total(\"watch_hours\") * 100.0).round() / 100.0)}" } }
                div { class: "tile", span { class: "muted", "Active subscriptions" } strong { id: "active-subs", "{label(active)}" } }
                div { class: "tile", span { class: "muted", "MRR" } strong { id: "mrr", "{mrr}" } }
                div { class: "tile", span { class: "muted", "Churn (14 days)" } strong { id: "churn", "{churn}" } }
            }
            DayChart {
                id: "chart-activity",
                title: "Signups and plays per day",
                days: days.clone(),
                series: vec![
                    Series { name: "signups", class: "s1", values: column(&days_json, "signups") },
                    Series { name: "plays", class: "s2", values: column(&days_json, "plays") },
                ],
                bars: false,
            }
            DayChart {
                id: "chart-watch",
                title: "Watch hours per day",
                days: days.clone(),
                series: vec![Series { name: "watch hours", class: "s3", values: column(&days_json, "watch_hours") }],
                bars: true,
            }
            DayChart {
                id: "chart-plans",
                title: "Active subscriptions by plan",
                days: plan_names,
                series: vec![Series { name: "subscriptions", class: "s2", values: plan_counts }],
                bars: true,
            }
            div { class: "card",
                h2 { "Top titles today" }
                if top_today.is_empty() {
                    p { class: "muted", "No plays yet today." }
                } else {
                    ol { id: "top-titles",
                        for t in top_today {
                            li { key: "{t[\"title_id\"]}", "{t[\"name\"].as_str().unwrap_or(t[\"title_id\"].as_str().unwrap_or(\"\"))} · {t[\"plays\"]} plays" }
                        }
                    }
                }
            }
            if let Some(msg) = error() { p { class: "error", role: "alert", "{msg}" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::axis_max;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(axis_max(0.0), (1.0, 0.25));
        assert_eq!(axis_max(7.0), (7.5, 2.5));
        assert_eq!(axis_max(1.0), (1.0, 0.5));
        assert_eq!(axis_max(230.0), (250.0, 50.0));
    }
}
