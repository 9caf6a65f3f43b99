//! Why an admin or support acted (a revoke, a reinstatement, a refund): said in the audit log and
//! to the member, so it is bounded.

use super::DomainError;

/// 1 to 500 characters, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 500 {
            return Err(DomainError::invalid("reason", "must be 1 to 500 characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn a_reason_is_one_to_five_hundred_characters_trimmed() {
        assert_eq!(Reason::parse("  chargeback ").unwrap().as_str(), "chargeback");
        assert_eq!(Reason::parse(&"é".repeat(500)).unwrap().as_str().chars().count(), 500, "characters, not bytes");
        for bad in ["", "   ", &"x".repeat(501)] {
            let e = Reason::parse(bad).unwrap_err();
            assert_eq!(e.to_string(), "reason must be 1 to 500 characters");
        }
    }
}
