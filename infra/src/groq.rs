//! Groq re-ranking: the local recommender's top candidates and the profile's recent history go to
//! the chat-completions endpoint in JSON mode; the answer may only re-order those candidates and
//! give one-line reasons. Anything else — an id outside the set, malformed output, an error, a
//! slow answer — is dropped or refused, and the caller keeps the local order.

use crate::settings::GroqSettings;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

pub use cinelog_projections::recommendations::Candidate;

/// Re-ranks through Groq's chat-completions API.
pub struct GroqReranker {
    http: reqwest::Client,
    settings: GroqSettings,
}

/// Longest reason kept.
const MAX_REASON_CHARS: usize = 140;

impl GroqReranker {
    pub fn new(settings: GroqSettings) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(settings.timeout_ms))
                .build()
                .expect("an HTTP client with a timeout builds"),
            settings,
        }
    }

    /// The candidates in the model's order with its reasons; candidates it left out follow in
    /// their original order. `Err` means: use the local order.
    pub async fn rerank(
        &self,
        profile: &str,
        history: &[String],
        candidates: &[Candidate],
    ) -> Result<Vec<(String, Option<String>)>, String> {
        let listing: Vec<Value> = candidates
            .iter()
            .map(|c| json!({"id": c.id, "title": c.name, "genres": c.genres}))
            .collect();
        let prompt = format!(
            "Re-rank these candidate titles for the viewer profile {profile:?}, whose recent history is {history:?}. \
             Use only the ids given. Answer in JSON as {{\"ranking\": [{{\"id\": \"...\", \"reason\": \"one short line\"}}]}}.\n\
             Candidates: {}",
            Value::Array(listing)
        );
        let body = json!({
            "model": self.settings.model,
            "messages": [
                {"role": "system", "content": "You order film and series recommendations. You answer only with a JSON object."},
                {"role": "user", "content": prompt}
            ],
            "temperature": 0.2,
            "max_tokens": 800,
            "response_format": {"type": "json_object"}
        });
        let url = format!(
            "{}/chat/completions",
            self.settings.api_base.trim_end_matches('/')
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(self.settings.api_key.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("Groq did not answer: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("Groq answered {}", response.status()));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("Groq's answer is not JSON: {e}"))?;
        let content = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or("Groq's answer has no message content")?;
        parse_ranking(content, candidates)
    }
}

/// Reads `{"ranking": [{"id", "reason"}]}` strictly: ids must be candidates, each counts once.
pub fn parse_ranking(
    content: &str,
    candidates: &[Candidate],
) -> Result<Vec<(String, Option<String>)>, String> {
    let parsed: Value = serde_json::from_str(content)
        .map_err(|e| format!("the model's output is not JSON: {e}"))?;
    let ranking = parsed["ranking"]
        .as_array()
        .ok_or("the model's output has no ranking list")?;
    let known: HashSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    let mut seen = HashSet::new();
    let mut ordered = Vec::new();
    for entry in ranking {
        let Some(id) = entry["id"].as_str() else {
            continue;
        };
        if !known.contains(id) || !seen.insert(id.to_string()) {
            continue;
        }
        let reason = entry["reason"]
            .as_str()
            .map(|r| r.trim().chars().take(MAX_REASON_CHARS).collect::<String>())
            .filter(|r| !r.is_empty());
        ordered.push((id.to_string(), reason));
    }
    if ordered.is_empty() {
        return Err("the model named none of the candidates".into());
    }
    for c in candidates {
        if !seen.contains(&c.id) {
            ordered.push((c.id.clone(), None));
        }
    }
    Ok(ordered)
}

#[async_trait::async_trait]
impl cinelog_projections::recommendations::Reranker for GroqReranker {
    async fn rerank(
        &self,
        profile: &str,
        history: &[String],
        candidates: &[Candidate],
    ) -> Result<Vec<(String, Option<String>)>, String> {
        GroqReranker::rerank(self, profile, history, candidates).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<Candidate> {
        ["a", "b", "c"]
            .iter()
            .map(|id| Candidate {
                id: id.to_string(),
                name: id.to_uppercase(),
                genres: vec![],
            })
            .collect()
    }

    #[test]
    fn only_candidates_count_once_and_the_rest_keep_their_order() {
        let out = parse_ranking(
            r#"{"ranking":[{"id":"c","reason":"Because."},{"id":"zzz"},{"id":"c"},{"id":"a","reason":"  "}]}"#,
            &candidates(),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                ("c".into(), Some("Because.".into())),
                ("a".into(), None),
                ("b".into(), None)
            ]
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "not json",
            "[]",
            r#"{"ranking":"a"}"#,
            r#"{"ranking":[{"id":"x"}]}"#,
            r#"{"ranking":[]}"#,
        ] {
            assert!(parse_ranking(bad, &candidates()).is_err(), "{bad}");
        }
    }
}
