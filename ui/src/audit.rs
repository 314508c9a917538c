//! The auditors' console: history search with filters, a stream's timeline of envelopes, a
//! correlation's causation tree, a stream's state as of a date and time, and the integrity
//! report.

use crate::api::{Api, Failure};
use crate::pages::{Screen, authed};
use dioxus::prelude::*;
use serde_json::Value;

/// What the console shows below its forms.
#[derive(Clone, PartialEq)]
enum Panel {
    Empty,
    Results(Value),
    Timeline(Value),
    Trace(Value),
    State(Value),
    Verify(Value),
}

/// A `datetime-local` value (taken as UTC) in RFC 3339, or empty.
fn rfc3339(local: &str) -> String {
    let t = local.trim();
    match t.len() {
        0 => String::new(),
        16 => format!("{t}:00Z"),
        _ => format!("{t}Z"),
    }
}

fn short(s: &str) -> String {
    if s.len() > 13 {
        format!("{}…", &s[..12])
    } else {
        s.to_string()
    }
}

/// One envelope as a table row; its stream and correlation open their views.
#[component]
fn EventRow(
    event: Value,
    on_stream: EventHandler<(String, String)>,
    on_trace: EventHandler<String>,
) -> Element {
    let st = event["stream_type"].as_str().unwrap_or("").to_string();
    let sid = event["stream_id"].as_str().unwrap_or("").to_string();
    let corr = event["correlation_id"].as_str().unwrap_or("").to_string();
    let stream_label = format!("{st}/{}", short(&sid));
    let (st2, sid2, corr2) = (st.clone(), sid.clone(), corr.clone());
    rsx! {
        tr { class: "audit-event",
            td { "{event[\"position\"]}" }
            td { "{event[\"recorded_at\"].as_str().unwrap_or(\"\")}" }
            td { button { class: "link stream-link", title: "{st}/{sid}", onclick: move |_| on_stream.call((st2.clone(), sid2.clone())), "{stream_label}" } }
            td { class: "event-type", "{event[\"event_type\"].as_str().unwrap_or(\"\")}" }
            td { "{event[\"actor\"].as_str().unwrap_or(\"\")}" }
            td { button { class: "link trace-link", title: "{corr}", onclick: move |_| on_trace.call(corr2.clone()), "{short(&corr)}" } }
        }
    }
}

/// One node of a causation tree and what it caused.
#[component]
fn TraceNode(node: Value) -> Element {
    let caused = node["caused"].as_array().cloned().unwrap_or_default();
    rsx! {
        li { class: "trace-node",
            span { class: "event-type", "{node[\"event_type\"].as_str().unwrap_or(\"\")}" }
            " on {node[\"stream_type\"].as_str().unwrap_or(\"\")}/{short(node[\"stream_id\"].as_str().unwrap_or(\"\"))} at {node[\"position\"]} by {node[\"actor\"].as_str().unwrap_or(\"\")}"
            if !caused.is_empty() {
                ul { for c in caused { TraceNode { node: c } } }
            }
        }
    }
}

/// The console screen.
#[component]
pub fn AuditConsole(
    api: Api,
    session: Signal<Option<crate::api::Session>>,
    screen: Signal<Screen>,
) -> Element {
    let mut actor = use_signal(String::new);
    let mut event_type = use_signal(String::new);
    let mut stream_type = use_signal(String::new);
    let mut stream_id = use_signal(String::new);
    let mut from = use_signal(String::new);
    let mut to = use_signal(String::new);
    let mut state_type = use_signal(|| "account".to_string());
    let mut state_id = use_signal(String::new);
    let mut state_at = use_signal(String::new);
    let mut panel = use_signal(|| Panel::Empty);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);

    // Runs one read and shows its answer in the panel `make` builds.
    let run = {
        let api = api.clone();
        move |path: String, query: Vec<(&'static str, String)>, make: fn(Value) -> Panel| {
            let api = api.clone();
            spawn(async move {
                busy.set(true);
                error.set(None);
                let answer: Result<Value, Failure> = authed(&api, session, screen, |token| {
                    let (api, path, query) = (api.clone(), path.clone(), query.clone());
                    async move { api.audit(&token, &path, &query).await }
                })
                .await;
                match answer {
                    Ok(v) => panel.set(make(v)),
                    Err(f) => error.set(Some(f.message)),
                }
                busy.set(false);
            });
        }
    };
    let search = {
        let run = run.clone();
        move |_| {
            run(
                "events".into(),
                vec![
                    ("actor", actor()),
                    ("type", event_type()),
                    ("stream_type", stream_type()),
                    ("stream_id", stream_id()),
                    ("from", rfc3339(&from())),
                    ("to", rfc3339(&to())),
                    ("limit", "200".into()),
                ],
                Panel::Results,
            )
        }
    };
    let open_stream = {
        let run = run.clone();
        move |(t, id): (String, String)| run(format!("streams/{t}/{id}"), vec![], Panel::Timeline)
    };
    let open_trace = {
        let run = run.clone();
        move |c: String| run(format!("trace/{c}"), vec![], Panel::Trace)
    };
    let show_state = {
        let run = run.clone();
        move |_| {
            run(
                format!(
                    "streams/{}/{}/state",
                    state_type().trim(),
                    state_id().trim()
                ),
                vec![("at", rfc3339(&state_at()))],
                Panel::State,
            )
        }
    };
    let verify = {
        let run = run.clone();
        move |_| run("verify".into(), vec![], Panel::Verify)
    };

    rsx! {
        section { id: "audit-console", class: "audit",
            h1 { "Audit" }
            div { class: "card", id: "audit-search-form",
                h2 { "Search the history" }
                div { class: "grid",
                    label { "Actor" input { id: "audit-actor", placeholder: "user:…, system, provider:stripe", oninput: move |e| actor.set(e.value()) } }
                    label { "Event type" input { id: "audit-type", placeholder: "ProfileCreated", oninput: move |e| event_type.set(e.value()) } }
                    label { "Stream type" input { id: "audit-stream-type", placeholder: "account", oninput: move |e| stream_type.set(e.value()) } }
                    label { "Stream id" input { id: "audit-stream-id", oninput: move |e| stream_id.set(e.value()) } }
                    label { "From (UTC)" input { id: "audit-from", r#type: "datetime-local", step: "1", oninput: move |e| from.set(e.value()) } }
                    label { "To (UTC)" input { id: "audit-to", r#type: "datetime-local", step: "1", oninput: move |e| to.set(e.value()) } }
                }
                button { id: "audit-search-btn", class: "primary", disabled: busy(), onclick: search, "Search" }
            }
            div { class: "card", id: "audit-state-form",
                h2 { "State as of a moment" }
                div { class: "grid",
                    label { "Stream type" input { id: "state-type", value: "{state_type}", oninput: move |e| state_type.set(e.value()) } }
                    label { "Stream id" input { id: "state-id", oninput: move |e| state_id.set(e.value()) } }
                    label { "At (UTC)" input { id: "state-at", r#type: "datetime-local", step: "1", oninput: move |e| state_at.set(e.value()) } }
                }
                button { id: "state-btn", class: "primary", disabled: busy() || state_id().trim().is_empty(), onclick: show_state, "Show state" }
                button { id: "verify-btn", class: "secondary", disabled: busy(), onclick: verify, "Verify integrity" }
            }
            if let Some(msg) = error() { p { class: "error", role: "alert", "{msg}" } }
            match panel() {
                Panel::Empty => rsx! { p { class: "muted", "Search, open a stream or a trace, or verify the log." } },
                Panel::Results(v) => {
                    let events = v["events"].as_array().cloned().unwrap_or_default();
                    let n = events.len();
                    rsx! {
                        div { id: "audit-results", class: "card",
                            h2 { "{n} events" }
                            table {
                                thead { tr { th { "Position" } th { "Recorded" } th { "Stream" } th { "Type" } th { "Actor" } th { "Correlation" } } }
                                tbody {
                                    for e in events {
                                        EventRow { event: e, on_stream: open_stream.clone(), on_trace: open_trace.clone() }
                                    }
                                }
                            }
                        }
                    }
                }
                Panel::Timeline(v) => {
                    let events = v["events"].as_array().cloned().unwrap_or_default();
                    let intact = v["chain_intact"].as_bool().unwrap_or(false);
                    rsx! {
                        div { id: "audit-timeline", class: "card",
                            h2 { "{v[\"stream_type\"].as_str().unwrap_or(\"\")}/{v[\"stream_id\"].as_str().unwrap_or(\"\")}" }
                            p { id: "timeline-chain", class: if intact { "notice" } else { "error" },
                                if intact { "Hash chain intact" } else { "Hash chain broken" }
                            }
                            ol { class: "timeline",
                                for e in events {
                                    li { class: "timeline-event",
                                        strong { "v{e[\"version\"]} {e[\"event_type\"].as_str().unwrap_or(\"\")}" }
                                        " at {e[\"recorded_at\"].as_str().unwrap_or(\"\")} by {e[\"actor\"].as_str().unwrap_or(\"\")}"
                                        pre { "{serde_json::to_string_pretty(&e[\"payload\"]).unwrap_or_default()}" }
                                    }
                                }
                            }
                        }
                    }
                }
                Panel::Trace(v) => {
                    let roots = v["roots"].as_array().cloned().unwrap_or_default();
                    rsx! {
                        div { id: "audit-trace", class: "card",
                            h2 { "Trace {v[\"correlation_id\"].as_str().unwrap_or(\"\")}: {v[\"events\"]} events" }
                            ul { class: "trace", for r in roots { TraceNode { node: r } } }
                        }
                    }
                }
                Panel::State(v) => rsx! {
                    div { id: "audit-state", class: "card",
                        h2 { "{v[\"stream_type\"].as_str().unwrap_or(\"\")} at version {v[\"version\"]}" }
                        p { class: "muted", "as of {v[\"as_of\"]}, from {v[\"events\"].as_array().map_or(0, Vec::len)} events" }
                        pre { id: "state-json", "{serde_json::to_string_pretty(&v[\"state\"]).unwrap_or_default()}" }
                    }
                },
                Panel::Verify(v) => {
                    let intact = v["intact"].as_bool().unwrap_or(false);
                    let broken = v["broken"].as_array().cloned().unwrap_or_default();
                    rsx! {
                        div { id: "audit-verify-report", class: "card",
                            h2 { id: "verify-verdict", class: if intact { "notice" } else { "error" },
                                if intact { "Intact" } else { "Broken" }
                            }
                            p { "Checked {v[\"events_checked\"]} events in {v[\"streams_checked\"]} streams and {v[\"anchors_checked\"]} signed anchors (key {short(v[\"public_key\"].as_str().unwrap_or(\"\"))})." }
                            if !broken.is_empty() {
                                ul { for b in broken {
                                    li { class: "broken-link", "{b[\"stream_type\"].as_str().unwrap_or(\"\")}/{b[\"stream_id\"].as_str().unwrap_or(\"\")} version {b[\"version\"]} at position {b[\"position\"]}: {b[\"problem\"].as_str().unwrap_or(\"\")}" }
                                } }
                            }
                        }
                    }
                }
            }
        }
    }
}
