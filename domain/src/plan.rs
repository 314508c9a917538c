//! Subscription plans: what each costs and what it allows.

use crate::values::InvalidField;
use serde::{Deserialize, Serialize};

/// A plan's identifier, as clients and providers name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanId {
    /// 720p, one stream at a time.
    Basic,
    /// 1080p, two streams at a time.
    Standard,
    /// 2160p (4K), four streams at a time.
    Premium,
}

/// Video height a plan allows at most, e.g. 1080 for 1080p.
pub type Quality = u32;

/// A plan as sold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Which plan this is.
    pub id: PlanId,
    /// Display name shown to subscribers, e.g. `Standard`.
    pub name: &'static str,
    /// Highest rendition height the plan plays, e.g. 1080.
    pub max_quality: Quality,
    /// Streams the account may play at the same time.
    pub concurrent_streams: u32,
    /// Monthly price in minor units of `currency` (cents).
    pub price_minor: i64,
    /// ISO 4217, lower case as providers send it.
    pub currency: &'static str,
}

/// Every plan on sale, cheapest first.
pub const PLANS: [Plan; 3] = [
    Plan {
        id: PlanId::Basic,
        name: "Basic",
        max_quality: 720,
        concurrent_streams: 1,
        price_minor: 799,
        currency: "usd",
    },
    Plan {
        id: PlanId::Standard,
        name: "Standard",
        max_quality: 1080,
        concurrent_streams: 2,
        price_minor: 1549,
        currency: "usd",
    },
    Plan {
        id: PlanId::Premium,
        name: "Premium",
        max_quality: 2160,
        concurrent_streams: 4,
        price_minor: 2299,
        currency: "usd",
    },
];

impl PlanId {
    /// Every plan id, cheapest first.
    pub const ALL: [PlanId; 3] = [PlanId::Basic, PlanId::Standard, PlanId::Premium];

    /// Reads a plan id as clients and providers send it (`basic`, `standard`, `premium`).
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == raw)
            .ok_or_else(|| InvalidField {
                field: "plan",
                message: "must be one of basic, standard, premium".into(),
            })
    }

    /// The plan id as clients and providers spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanId::Basic => "basic",
            PlanId::Standard => "standard",
            PlanId::Premium => "premium",
        }
    }

    /// What this plan costs and allows.
    pub fn plan(self) -> &'static Plan {
        PLANS
            .iter()
            .find(|p| p.id == self)
            .expect("every plan id has a plan")
    }

    /// Whether a payment of `amount` `currency` is this plan's monthly price.
    pub fn is_priced(self, amount: i64, currency: &str) -> bool {
        let plan = self.plan();
        plan.price_minor == amount && plan.currency.eq_ignore_ascii_case(currency)
    }
}
