//! A small client of Cinelog's HTTP API.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Profile {
    pub profile_id: String,
    pub name: String,
    pub kids: bool,
    pub maturity_rating: String,
    pub avatar: String,
    /// Whether a PIN locks the profile.
    #[serde(default)]
    pub locked: bool,
}

impl Session {
    /// The role named in the access token (`viewer`, `analyst`, `auditor`). Only used to choose
    /// which screens to offer: the API checks the role on every call.
    pub fn role(&self) -> Option<String> {
        use base64::Engine;
        let claims = self.access_token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        v["role"].as_str().map(str::to_string)
    }
}

/// A failed call: the API's error code and message.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Failure {
    /// The message as a viewer should read it: a field error ("password: is too easy to
    /// guess") as a sentence, a refusal for too many tries or an unreachable server in words.
    pub fn human(self) -> String {
        match self.status {
            0 => "We could not reach Cinelog. Check your connection and try again.".into(),
            429 => "Too many tries. Wait a few minutes and try again.".into(),
            500..=599 => "Something went wrong on our side. Try again in a moment.".into(),
            422 | 400 => match self.message.split_once(": ") {
                Some((field, why)) if !field.contains(' ') => {
                    let mut field = field.replace('_', " ");
                    if let Some(first) = field.get_mut(0..1) {
                        first.make_ascii_uppercase();
                    }
                    let why = why.trim_end_matches('.');
                    format!("{field} {why}.")
                }
                _ => self.message,
            },
            _ => self.message,
        }
    }

    /// The API's error body, `{"error", "message"}`.
    fn answered(status: u16, value: &Value) -> Self {
        Failure {
            status,
            code: value["error"].as_str().unwrap_or("error").to_string(),
            message: value["message"]
                .as_str()
                .unwrap_or("something went wrong")
                .to_string(),
        }
    }

    fn network(e: reqwest::Error) -> Self {
        Failure {
            status: 0,
            code: "network".into(),
            message: format!("could not reach the server: {e}"),
        }
    }
}

/// What a subscriber asks of a running subscription.
pub enum SubscriptionChange<'a> {
    Plan(&'a str),
    Cancel,
    Resume,
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl PartialEq for Api {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base
    }
}

impl Api {
    pub fn new(base: String) -> Self {
        Api {
            http: reqwest::Client::new(),
            base,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(Failure::network)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(Failure::network)?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(Failure::answered(status, &value))
        }
    }

    pub async fn signup(&self, email: &str, password: &str) -> Result<(), Failure> {
        self.call(
            reqwest::Method::POST,
            "/api/auth/signup",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
        .map(|_| ())
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<Session, Failure> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        session_from(&v)
    }

    pub async fn request_password_reset(&self, email: &str) -> Result<(), Failure> {
        self.call(
            reqwest::Method::POST,
            "/api/auth/password-reset",
            None,
            Some(json!({"email": email})),
        )
        .await
        .map(|_| ())
    }

    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
    ) -> Result<(), Failure> {
        self.call(
            reqwest::Method::POST,
            "/api/auth/password-reset/confirm",
            None,
            Some(json!({"token": token, "new_password": new_password})),
        )
        .await
        .map(|_| ())
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, Failure> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/api/auth/refresh",
                None,
                Some(json!({"refresh_token": refresh_token})),
            )
            .await?;
        session_from(&v)
    }

    pub async fn logout(&self, token: &str) -> Result<(), Failure> {
        self.call(reqwest::Method::POST, "/api/auth/logout", Some(token), None)
            .await
            .map(|_| ())
    }

    /// An auditors' read: `GET /api/audit/{path}` with the non-empty `query` pairs.
    pub async fn audit(
        &self,
        token: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, Failure> {
        let mut url =
            reqwest::Url::parse(&format!("{}/api/audit/{path}", self.base)).map_err(|e| {
                Failure {
                    status: 0,
                    code: "bad_address".into(),
                    message: e.to_string(),
                }
            })?;
        for (k, v) in query.iter().filter(|(_, v)| !v.trim().is_empty()) {
            url.query_pairs_mut().append_pair(k, v.trim());
        }
        let target = format!(
            "{}{}",
            url.path(),
            url.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        self.call(reqwest::Method::GET, &target, Some(token), None)
            .await
    }

    /// The analysts' dashboard aggregates for the last `days` days.
    pub async fn dashboard(&self, token: &str, days: u32) -> Result<Value, Failure> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/stats/dashboard?days={days}"),
            Some(token),
            None,
        )
        .await
    }

    /// Erases the signed-in user's account (`DELETE /api/me`).
    pub async fn erase_account(&self, token: &str, password: &str) -> Result<(), Failure> {
        self.call(
            reqwest::Method::DELETE,
            "/api/me",
            Some(token),
            Some(json!({ "password": password })),
        )
        .await
        .map(|_| ())
    }

    /// The signed-in user's account summary (`GET /api/me`).
    pub async fn me(&self, token: &str, min_position: i64) -> Result<Value, Failure> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/me?min_position={min_position}"),
            Some(token),
            None,
        )
        .await
    }

    pub async fn start_phone_verification(&self, token: &str, phone: &str) -> Result<(), Failure> {
        self.call(
            reqwest::Method::POST,
            "/api/auth/phone/start",
            Some(token),
            Some(json!({"phone": phone})),
        )
        .await
        .map(|_| ())
    }

    pub async fn verify_phone(&self, token: &str, code: &str) -> Result<(), Failure> {
        self.call(
            reqwest::Method::POST,
            "/api/auth/phone/verify",
            Some(token),
            Some(json!({"code": code})),
        )
        .await
        .map(|_| ())
    }

    pub async fn profiles(&self, token: &str, min_position: i64) -> Result<Vec<Profile>, Failure> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/api/profiles?min_position={min_position}"),
                Some(token),
                None,
            )
            .await?;
        serde_json::from_value(v).map_err(|e| Failure {
            status: 0,
            code: "unreadable".into(),
            message: e.to_string(),
        })
    }

    /// Creates a profile; answers the position to read it back at.
    /// Changes a profile (`{name?, kids?, maturity_rating?, avatar?}`); answers the log position.
    pub async fn update_profile(
        &self,
        token: &str,
        profile_id: &str,
        changes: Value,
    ) -> Result<i64, Failure> {
        let v = self
            .call(
                reqwest::Method::PATCH,
                &format!("/api/profiles/{}", encode(profile_id)),
                Some(token),
                Some(changes),
            )
            .await?;
        Ok(v["position"].as_i64().unwrap_or(0))
    }

    pub async fn delete_profile(&self, token: &str, profile_id: &str) -> Result<(), Failure> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/api/profiles/{}", encode(profile_id)),
            Some(token),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Locks a profile with `pin` (given its current PIN if locked), or removes the lock
    /// (`pin` `None`); answers the log position.
    pub async fn set_pin(
        &self,
        token: &str,
        profile_id: &str,
        pin: Option<&str>,
        current_pin: Option<&str>,
    ) -> Result<i64, Failure> {
        let path = format!("/api/profiles/{}/pin", encode(profile_id));
        let v = match pin {
            Some(pin) => {
                self.call(
                    reqwest::Method::PUT,
                    &path,
                    Some(token),
                    Some(json!({"pin": pin, "current_pin": current_pin})),
                )
                .await?
            }
            None => {
                self.call(
                    reqwest::Method::DELETE,
                    &path,
                    Some(token),
                    Some(json!({"current_pin": current_pin.unwrap_or_default()})),
                )
                .await?
            }
        };
        Ok(v["position"].as_i64().unwrap_or(0))
    }

    pub async fn unlock_profile(
        &self,
        token: &str,
        profile_id: &str,
        pin: &str,
    ) -> Result<(), Failure> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/profiles/{}/unlock", encode(profile_id)),
            Some(token),
            Some(json!({"pin": pin})),
        )
        .await
        .map(|_| ())
    }

    /// Checks the account password again.
    pub async fn confirm_password(&self, token: &str, password: &str) -> Result<(), Failure> {
        self.call(
            reqwest::Method::POST,
            "/api/auth/confirm",
            Some(token),
            Some(json!({"password": password})),
        )
        .await
        .map(|_| ())
    }

    pub async fn create_profile(
        &self,
        token: &str,
        name: &str,
        kids: bool,
    ) -> Result<i64, Failure> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/api/profiles",
                Some(token),
                Some(json!({"name": name, "kids": kids})),
            )
            .await?;
        Ok(v["position"].as_i64().unwrap_or(0))
    }

    /// Plans on sale and the payment providers offered (`GET /api/plans`).
    pub async fn plans(&self) -> Result<Value, Failure> {
        self.call(reqwest::Method::GET, "/api/plans", None, None)
            .await
    }

    /// The account's subscription, entitlement and payment history.
    pub async fn subscription(&self, token: &str, min_position: i64) -> Result<Value, Failure> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/subscription?min_position={min_position}"),
            Some(token),
            None,
        )
        .await
    }

    /// Opens a checkout; answers where to send the browser.
    pub async fn checkout(
        &self,
        token: &str,
        plan: &str,
        provider: &str,
    ) -> Result<String, Failure> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/api/subscription/checkout",
                Some(token),
                Some(json!({"plan": plan, "provider": provider})),
            )
            .await?;
        Ok(v["redirect_url"].as_str().unwrap_or("/").to_string())
    }

    /// Changes a running subscription; answers the position to read back at.
    pub async fn change_subscription(
        &self,
        token: &str,
        change: SubscriptionChange<'_>,
    ) -> Result<i64, Failure> {
        let (path, body) = match change {
            SubscriptionChange::Plan(plan) => ("/api/subscription/change", json!({"plan": plan})),
            SubscriptionChange::Cancel => ("/api/subscription/cancel", json!({})),
            SubscriptionChange::Resume => ("/api/subscription/resume", json!({})),
        };
        let v = self
            .call(reqwest::Method::POST, path, Some(token), Some(body))
            .await?;
        Ok(v["position"].as_i64().unwrap_or(0))
    }

    /// A page of titles for a profile (`GET /api/titles`), optionally searched or by genre.
    pub async fn titles(
        &self,
        token: &str,
        profile_id: &str,
        query: &str,
        genre: &str,
    ) -> Result<Value, Failure> {
        let path = format!(
            "/api/titles?profile_id={}&query={}&genre={}",
            encode(profile_id),
            encode(query),
            encode(genre)
        );
        self.call(reqwest::Method::GET, &path, Some(token), None)
            .await
    }

    pub async fn title(&self, token: &str, profile_id: &str, id: &str) -> Result<Value, Failure> {
        let path = format!(
            "/api/titles/{}?profile_id={}",
            encode(id),
            encode(profile_id)
        );
        self.call(reqwest::Method::GET, &path, Some(token), None)
            .await
    }

    pub async fn genres(&self) -> Result<Value, Failure> {
        self.call(reqwest::Method::GET, "/api/genres", None, None)
            .await
    }

    /// Opens a playback session (`POST /api/profiles/{pid}/playback`).
    pub async fn start_playback(
        &self,
        token: &str,
        profile_id: &str,
        title_id: &str,
        episode_id: Option<&str>,
    ) -> Result<Value, Failure> {
        let path = format!("/api/profiles/{}/playback", encode(profile_id));
        let body = json!({"title_id": title_id, "episode_id": episode_id});
        self.call(reqwest::Method::POST, &path, Some(token), Some(body))
            .await
    }

    /// Reports progress, or the end of the session when `stop`.
    pub async fn playback_progress(
        &self,
        token: &str,
        session_id: &str,
        position_secs: f64,
        stop: bool,
    ) -> Result<(), Failure> {
        let what = if stop { "stop" } else { "heartbeat" };
        let path = format!("/api/playback/{}/{what}", encode(session_id));
        self.call(
            reqwest::Method::POST,
            &path,
            Some(token),
            Some(json!({"position_secs": position_secs})),
        )
        .await
        .map(|_| ())
    }

    /// Rates a title (`Some`) or removes the rating (`None`); answers the position.
    pub async fn rate(
        &self,
        token: &str,
        profile_id: &str,
        title_id: &str,
        rating: Option<&str>,
    ) -> Result<i64, Failure> {
        let path = format!(
            "/api/profiles/{}/ratings/{}",
            encode(profile_id),
            encode(title_id)
        );
        let (method, body) = match rating {
            Some(r) => (reqwest::Method::PUT, Some(json!({"rating": r}))),
            None => (reqwest::Method::DELETE, None),
        };
        self.position_of(method, &path, token, body).await
    }

    /// Adds a title to My List or takes it off; answers the position.
    pub async fn set_on_list(
        &self,
        token: &str,
        profile_id: &str,
        title_id: &str,
        on: bool,
    ) -> Result<i64, Failure> {
        let path = format!(
            "/api/profiles/{}/list/{}",
            encode(profile_id),
            encode(title_id)
        );
        let method = if on {
            reqwest::Method::PUT
        } else {
            reqwest::Method::DELETE
        };
        self.position_of(method, &path, token, None).await
    }

    /// Sends a command and reads the position it answers with (in the body, or the
    /// `x-position` header of a 204).
    async fn position_of(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<i64, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(Failure::network)?;
        let status = resp.status().as_u16();
        let header = resp
            .headers()
            .get("x-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(header.or(value["position"].as_i64()).unwrap_or(0))
        } else {
            Err(Failure::answered(status, &value))
        }
    }

    /// A per-profile list at a position: `list`, `ratings` or `recommendations`.
    pub async fn profile_view(
        &self,
        token: &str,
        profile_id: &str,
        view: &str,
        min_position: i64,
    ) -> Result<Value, Failure> {
        let path = format!(
            "/api/profiles/{}/{view}?min_position={min_position}",
            encode(profile_id)
        );
        self.call(reqwest::Method::GET, &path, Some(token), None)
            .await
    }
}

fn session_from(v: &Value) -> Result<Session, Failure> {
    serde_json::from_value(v.clone()).map_err(|e| Failure {
        status: 0,
        code: "unreadable".into(),
        message: e.to_string(),
    })
}

/// Percent-encodes a query or path value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod human_tests {
    use super::Failure;

    fn failure(status: u16, message: &str) -> Failure {
        Failure {
            status,
            code: "x".into(),
            message: message.into(),
        }
    }

    #[test]
    fn field_errors_read_as_sentences() {
        assert_eq!(
            failure(422, "password: is too easy to guess").human(),
            "Password is too easy to guess."
        );
        assert_eq!(
            failure(422, "maturity_rating: must be one of all, 7+").human(),
            "Maturity rating must be one of all, 7+."
        );
        assert_eq!(failure(409, "taken").human(), "taken");
        assert!(failure(0, "io").human().starts_with("We could not reach"));
        assert!(
            failure(503, "down")
                .human()
                .starts_with("Something went wrong")
        );
    }
}
