//! Email delivery: SMTP through `lettre` when `[smtp]` is configured, else an outbox folder
//! (`<data-dir>/outbox`) where each message is written as an `.eml` file. Neither writes a
//! message's content (links, tokens) to the server log.

use crate::settings::{SmtpSecurity, SmtpSettings};
use async_trait::async_trait;
use cinelog_commands::ports::Mailer;
use cinelog_domain::values::Email;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;

/// The password-reset message: subject and plain-text body.
fn reset_message(public_url: &str, token: &str) -> (&'static str, String) {
    (
        "Reset your Cinelog password",
        format!(
            "Someone asked to reset the password of your Cinelog account.\n\n\
             To choose a new password, open this link within 30 minutes:\n\n\
             {public_url}/?reset={token}\n\n\
             If it was not you, ignore this message: your password stays as it is.\n"
        ),
    )
}

/// Sends mail through an SMTP relay.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
}

impl SmtpMailer {
    pub fn new(settings: &SmtpSettings, public_url: &str) -> anyhow::Result<Self> {
        let mut builder = match settings.security {
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?,
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
        }
        .port(settings.port)
        .timeout(Some(std::time::Duration::from_secs(10)));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from: settings
                .from
                .parse()
                .map_err(|e| anyhow::anyhow!("[smtp] from {:?}: {e}", settings.from))?,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send_password_reset(&self, to: &Email, token: &str) -> Result<(), String> {
        let (subject, body) = reset_message(&self.public_url, token);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.as_str().parse().map_err(|e| format!("recipient: {e}"))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP delivery failed: {e}"))
    }
}

/// The embedded default: each message becomes a file in the outbox folder, for a developer to
/// open; nothing is sent.
pub struct OutboxMailer {
    pub dir: PathBuf,
    /// Where reset links point, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send_password_reset(&self, to: &Email, token: &str) -> Result<(), String> {
        let (subject, body) = reset_message(&self.public_url, token);
        let text = format!("To: {}\nSubject: {subject}\n\n{body}", to.as_str());
        let file = self.dir.join(format!(
            "{}-password-reset.eml",
            uuid::Uuid::now_v7().simple()
        ));
        write_outbox(&file, &text).await?;
        tracing::info!(file = %file.display(), "password-reset mail written to the outbox");
        Ok(())
    }
}

/// Writes a file only its owner can read into the outbox folder.
pub async fn write_outbox(file: &std::path::Path, text: &str) -> Result<(), String> {
    let (file, text) = (file.to_path_buf(), text.to_string());
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&file)?.write_all(text.as_bytes())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("writing to the outbox: {e}"))
}
