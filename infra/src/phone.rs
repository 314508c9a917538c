//! Phone verification: Twilio Verify over HTTP, or a console verifier that logs the code.

use async_trait::async_trait;
use cinelog_commands::ports::PhoneVerifier;
use cinelog_domain::values::Phone;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::settings::Secret;

/// Shows a phone number without most of its digits.
pub fn mask(phone: &Phone) -> String {
    // Valid numbers have at least 8 characters ("+" and 7 digits).
    let p = phone.as_str();
    format!(
        "{}{}{}",
        &p[..4],
        "*".repeat(p.len() - 6),
        &p[p.len() - 2..]
    )
}

/// Wrong codes allowed before a sent code stops working.
const MAX_CODE_ATTEMPTS: u32 = 5;

/// The embedded default: instead of an SMS, each code is written to a file in the outbox
/// folder (never to the server log).
#[derive(Default)]
pub struct ConsoleVerifier {
    /// Per phone: the code sent and the wrong attempts made at it.
    codes: Mutex<HashMap<String, (String, u32)>>,
    /// Where codes are written; `None` keeps them in memory only.
    outbox: Option<std::path::PathBuf>,
}

impl ConsoleVerifier {
    pub fn with_outbox(dir: std::path::PathBuf) -> Self {
        ConsoleVerifier {
            codes: Mutex::default(),
            outbox: Some(dir),
        }
    }

    /// The code last sent to a phone (the console is where a developer reads it).
    pub fn code_for(&self, phone: &Phone) -> Option<String> {
        self.codes
            .lock()
            .ok()?
            .get(phone.as_str())
            .map(|(code, _)| code.clone())
    }
}

#[async_trait]
impl PhoneVerifier for ConsoleVerifier {
    async fn start(&self, phone: &Phone) -> Result<(), String> {
        let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
        if let Some(dir) = &self.outbox {
            let file = dir.join(format!("{}-sms.txt", uuid::Uuid::now_v7().simple()));
            let text = format!(
                "To: {}\n\nYour Cinelog verification code is {code}\n",
                phone.as_str()
            );
            crate::mail::write_outbox(&file, &text).await?;
            tracing::info!(phone = %mask(phone), file = %file.display(), "phone code written to the outbox");
        }
        self.codes
            .lock()
            .map_err(|e| e.to_string())?
            .insert(phone.as_str().to_string(), (code, 0));
        Ok(())
    }

    async fn check(&self, phone: &Phone, code: &str) -> Result<bool, String> {
        let mut codes = self.codes.lock().map_err(|e| e.to_string())?;
        let Some((sent, attempts)) = codes.get_mut(phone.as_str()) else {
            return Ok(false);
        };
        if sent == code {
            codes.remove(phone.as_str());
            return Ok(true);
        }
        *attempts += 1;
        if *attempts >= MAX_CODE_ATTEMPTS {
            codes.remove(phone.as_str());
        }
        Ok(false)
    }
}

/// Twilio Verify v2.
pub struct TwilioVerifier {
    http: reqwest::Client,
    base_url: String,
    service_sid: String,
    account_sid: String,
    auth_token: Secret,
}

#[derive(Deserialize)]
struct Verification {
    status: String,
    #[serde(default)]
    valid: Option<bool>,
}

impl TwilioVerifier {
    pub fn new(base_url: &str, service_sid: &str, account_sid: &str, auth_token: Secret) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("static reqwest configuration");
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            service_sid: service_sid.into(),
            account_sid: account_sid.into(),
            auth_token,
        }
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Option<Verification>, String> {
        let url = format!("{}/Services/{}/{path}", self.base_url, self.service_sid);
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(form)
            .send()
            .await
            .map_err(|e| format!("twilio unreachable: {e}"))?;
        match response.status().as_u16() {
            200 | 201 => response
                .json()
                .await
                .map(Some)
                .map_err(|e| format!("twilio answered an unreadable body: {e}")),
            // Twilio answers 404 once a verification has expired, been approved or been canceled.
            404 => Ok(None),
            status => Err(format!("twilio answered HTTP {status}")),
        }
    }
}

#[async_trait]
impl PhoneVerifier for TwilioVerifier {
    async fn start(&self, phone: &Phone) -> Result<(), String> {
        match self
            .post(
                "Verifications",
                &[("To", phone.as_str()), ("Channel", "sms")],
            )
            .await?
        {
            Some(v) if v.status == "pending" => Ok(()),
            Some(v) => Err(format!("twilio verification is {}", v.status)),
            None => Err("twilio service not found".into()),
        }
    }

    async fn check(&self, phone: &Phone, code: &str) -> Result<bool, String> {
        let v = self
            .post(
                "VerificationCheck",
                &[("To", phone.as_str()), ("Code", code)],
            )
            .await?;
        Ok(v.is_some_and(|v| v.status == "approved" && v.valid != Some(false)))
    }
}
