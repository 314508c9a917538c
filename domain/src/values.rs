//! Validated value types (email, phone, names, ratings, roles) and the rules that check input.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A field that failed validation: which one and why, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// The input field at fault, as the client named it.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field,
        message: message.into(),
    }
}

/// An email address, trimmed and case-folded: `Alice@Example.com` and `alice@example.com` are one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Trims and lower-cases `raw`, refusing anything that is not a plausible address.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let email = raw.trim().to_lowercase();
        let ok = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && local.len() <= 64 && domain.contains('.')
                && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@'));
        if ok {
            Ok(Email(email))
        } else {
            Err(invalid("email", "is not a valid email address"))
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Stream id of the email's uniqueness claim: a hash, so the log's stream ids hold no address.
    pub fn claim_id(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// Personal data encrypted with its owner's key, which is kept outside the log. Destroying the
/// key makes it unreadable for good; event hashes cover the ciphertext, so chains stay valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub String);

/// A password as typed; only its policy lives here, hashing is the write side's job.
pub fn check_password(password: &str) -> Result<(), InvalidField> {
    let n = password.chars().count();
    if n < 8 {
        Err(invalid("password", "must be at least 8 characters"))
    } else if n > 128 {
        Err(invalid("password", "must be at most 128 characters"))
    } else {
        Ok(())
    }
}

/// A phone number in E.164 form, e.g. `+14155550100`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Reads a number in international form, ignoring spaces, dashes and parentheses.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let compact: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
            .collect();
        let digits = compact.strip_prefix('+').unwrap_or("");
        let ok = (7..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Phone(compact))
        } else {
            Err(invalid(
                "phone",
                "must be in international form, e.g. +14155550100",
            ))
        }
    }

    /// The number in E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a user may do beyond watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches; the role every user starts with.
    #[default]
    Viewer,
    /// May also read statistics and export the event log.
    Analyst,
    /// May do all an analyst does and read the audit trail.
    Auditor,
}

impl std::str::FromStr for Role {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, InvalidField> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "analyst" => Ok(Role::Analyst),
            "auditor" => Ok(Role::Auditor),
            _ => Err(invalid("role", "must be viewer, analyst or auditor")),
        }
    }
}

impl Role {
    /// The role as the API and tokens spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
        }
    }
}

/// The highest maturity rating a profile may watch, ordered from youngest to oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
pub enum Maturity {
    /// Suitable for everyone.
    #[serde(rename = "all")]
    All,
    /// Seven and older.
    #[serde(rename = "7+")]
    Age7,
    /// Thirteen and older.
    #[serde(rename = "13+")]
    Age13,
    /// Sixteen and older.
    #[serde(rename = "16+")]
    Age16,
    /// Adults only.
    #[serde(rename = "18+")]
    Age18,
}

impl Maturity {
    /// Every rating, youngest first.
    pub const ALL: [Maturity; 5] = [
        Maturity::All,
        Maturity::Age7,
        Maturity::Age13,
        Maturity::Age16,
        Maturity::Age18,
    ];
    /// The highest rating a kids profile may be set to.
    pub const KIDS_MAX: Maturity = Maturity::Age13;

    /// Whether a profile whose ceiling is `self` may see a title rated `rating`: the one
    /// visibility rule of the catalog, recommendations and playback.
    pub fn allows(self, rating: Maturity) -> bool {
        rating <= self
    }

    /// The rating's place in order, youngest first (read models store it to filter with SQL).
    pub fn rank(self) -> i64 {
        Self::ALL.iter().position(|m| *m == self).unwrap_or(0) as i64
    }

    /// Reads a rating as clients send it (`all`, `7+`, `13+`, `16+`, `18+`).
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == raw)
            .ok_or_else(|| invalid("maturity_rating", "must be one of all, 7+, 13+, 16+, 18+"))
    }

    /// The rating as clients and the catalog spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Maturity::All => "all",
            Maturity::Age7 => "7+",
            Maturity::Age13 => "13+",
            Maturity::Age16 => "16+",
            Maturity::Age18 => "18+",
        }
    }

    /// The rating a new profile starts with: `7+` for a kids profile, `18+` otherwise.
    pub fn default_for(kids: bool) -> Self {
        if kids {
            Maturity::Age7
        } else {
            Maturity::Age18
        }
    }
}

/// A profile's display name: 1 to 40 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileName(String);

impl ProfileName {
    /// Trims `raw` and checks its length and characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let name = raw.trim();
        match name.chars().count() {
            0 => Err(invalid("name", "must not be empty")),
            1..=40 if !name.chars().any(char::is_control) => Ok(ProfileName(name.to_string())),
            1..=40 => Err(invalid("name", "must not contain control characters")),
            _ => Err(invalid("name", "must be at most 40 characters")),
        }
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Names are unique per account regardless of case.
    pub fn same_as(&self, other: &ProfileName) -> bool {
        self.0.to_lowercase() == other.0.to_lowercase()
    }
}

/// A profile PIN: exactly four digits.
pub fn check_pin(raw: &str) -> Result<String, InvalidField> {
    if raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_digit()) {
        Ok(raw.to_string())
    } else {
        Err(invalid("pin", "must be exactly 4 digits"))
    }
}

/// An avatar key: lowercase letters, digits and dashes, up to 32.
pub fn check_avatar(raw: &str) -> Result<String, InvalidField> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(invalid(
            "avatar",
            "must be 1-32 lowercase letters, digits or dashes",
        ))
    }
}

/// A language tag such as `en` or `pt-BR`.
pub fn check_language(raw: &str) -> Result<String, InvalidField> {
    let ok = (2..=12).contains(&raw.len())
        && raw.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if ok {
        Ok(raw.to_string())
    } else {
        Err(invalid(
            "language",
            "must be a language tag such as en or pt-BR",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_fold_case_and_reject_garbage() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        assert_eq!(
            Email::parse("ALICE@example.com").unwrap().claim_id(),
            Email::parse("alice@example.com").unwrap().claim_id()
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn phones_need_international_form() {
        assert_eq!(
            Phone::parse("+1 415 555-0100").unwrap().as_str(),
            "+14155550100"
        );
        for bad in ["4155550100", "+0123456789", "+1", "+1415555abcd"] {
            assert!(Phone::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn maturity_is_ordered_and_parsed() {
        assert!(Maturity::Age7 < Maturity::Age18);
        assert_eq!(Maturity::parse("13+").unwrap(), Maturity::Age13);
        assert!(Maturity::parse("R").is_err());
    }

    #[test]
    fn profile_names_are_trimmed_and_bounded() {
        assert_eq!(ProfileName::parse("  Kid ").unwrap().as_str(), "Kid");
        assert!(ProfileName::parse("   ").is_err());
        assert!(ProfileName::parse(&"x".repeat(41)).is_err());
        assert!(
            ProfileName::parse("Mum")
                .unwrap()
                .same_as(&ProfileName::parse("MUM").unwrap())
        );
    }
}
