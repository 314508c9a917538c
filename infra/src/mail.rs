//! Email delivery. The embedded default writes messages to the server log.

use async_trait::async_trait;
use cinelog_commands::ports::Mailer;
use cinelog_domain::values::Email;

pub struct ConsoleMailer {
    /// Where reset links point, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
}

#[async_trait]
impl Mailer for ConsoleMailer {
    async fn send_password_reset(&self, _to: &Email, token: &str) -> Result<(), String> {
        tracing::info!(link = %format!("{}/?reset={token}", self.public_url), "password reset email (console mail)");
        Ok(())
    }
}
