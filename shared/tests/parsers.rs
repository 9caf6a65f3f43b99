//! Property tests: the parsers at the edge accept exactly what they should and never panic,
//! whatever they are given.

use proptest::prelude::*;
use telegate_core::adapters::telegram::parse_update;
use telegate_core::domain::{AccessToken, Lang, Offers, Schedule, TelegramUserId, UserId, parse_transaction_id};

fn deep_link_alphabet(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_token_parses_exactly_when_it_is_1_to_64_deep_link_characters(s in ".{0,80}") {
        let ok = AccessToken::parse(&s).is_ok();
        prop_assert_eq!(ok, !s.is_empty() && s.len() <= 64 && deep_link_alphabet(&s));
    }

    #[test]
    fn every_generated_token_parses_back_to_the_same_hash(_x in 0u8..8) {
        let t = AccessToken::generate().unwrap();
        prop_assert_eq!(AccessToken::parse(t.expose()).unwrap().hash(), t.hash());
    }

    #[test]
    fn a_user_id_is_trimmed_printable_and_bounded(s in "\\PC{0,140}|.{0,20}") {
        if let Ok(u) = UserId::parse(&s) {
            prop_assert!(!u.as_str().is_empty() && u.as_str().len() <= 128);
            prop_assert_eq!(u.as_str(), s.trim());
            prop_assert!(!u.as_str().chars().any(char::is_control));
        }
    }

    #[test]
    fn telegram_user_ids_are_exactly_the_positive_ones(n in any::<i64>()) {
        prop_assert_eq!(TelegramUserId::parse(n).is_ok(), n > 0);
    }

    #[test]
    fn transaction_ids_are_trimmed_and_bounded(s in ".{0,200}") {
        if let Ok(t) = parse_transaction_id(&s) {
            prop_assert!(!t.is_empty() && t.len() <= 128 && t == s.trim());
        }
    }

    #[test]
    fn schedules_languages_and_offers_never_panic(s in ".{0,40}") {
        let _ = Schedule::parse(&s);
        let _ = Lang::from_code(Some(&s));
        let _ = Offers::from_json(&s, 30);
    }

    #[test]
    fn any_json_update_parses_or_is_refused_without_panicking(id in any::<i64>(), text in ".{0,100}", kind in "[a-z_]{1,20}") {
        let raw = serde_json::json!({"update_id": id, kind: {"text": text, "chat": {"id": id}}}).to_string();
        let _ = parse_update(raw.as_bytes());
        let _ = parse_update(text.as_bytes());
    }
}
