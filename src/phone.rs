//! Phone numbers, parsed at the edge: mainland China mobiles, stored as E.164.

use std::fmt;

/// A mainland China mobile number (`1[3-9]` and 9 more digits), held as E.164 `+861XXXXXXXXXX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Accepts `13812345678`, `+86 138 1234 5678`, `0086-138-1234-5678`, `86 13812345678`;
    /// spaces, dashes and dots are ignored. Anything else is `None`.
    pub fn parse(input: &str) -> Option<Phone> {
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{3000}'))
            .collect();
        let national = compact
            .strip_prefix("+86")
            .or_else(|| compact.strip_prefix("0086"))
            .or_else(|| compact.strip_prefix("86").filter(|rest| rest.len() == 11))
            .unwrap_or(&compact);
        let bytes = national.as_bytes();
        let valid = bytes.len() == 11
            && bytes[0] == b'1'
            && (b'3'..=b'9').contains(&bytes[1])
            && bytes.iter().all(u8::is_ascii_digit);
        valid.then(|| Phone(format!("+86{national}")))
    }

    /// E.164, e.g. `+8613812345678`.
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// The 11 national digits.
    pub fn national(&self) -> &str {
        &self.0[3..]
    }

    /// `138****5678`.
    pub fn masked(&self) -> String {
        crate::ui::mask_phone(&self.0)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Displayed masked so a stray `{}` in a log line can't leak the number.
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::Phone;

    #[test]
    fn accepts_mainland_mobiles_in_common_spellings() {
        for input in [
            "13812345678",
            "+8613812345678",
            "+86 138 1234 5678",
            "0086-138-1234-5678",
            "86 13812345678",
            " 138.1234.5678 ",
        ] {
            assert_eq!(
                Phone::parse(input).map(|p| p.e164().to_owned()),
                Some("+8613812345678".into()),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_everything_else() {
        for input in [
            "",
            "1381234567",
            "138123456789",
            "12812345678",
            "23812345678",
            "+1 415 555 0100",
            "1381234567a",
            "+86+8613812345678",
            "８１３８１２３４５６７",
            "861381234567",
        ] {
            assert_eq!(Phone::parse(input), None, "{input}");
        }
    }

    #[test]
    fn display_is_masked() {
        assert_eq!(
            Phone::parse("13812345678").unwrap().to_string(),
            "138****5678"
        );
    }
}
