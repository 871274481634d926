//! Forgiving text comparison shared by tactic, technique-name and taxonomy lookups.

/// Lower-case alphanumeric words joined by single spaces, with `&` read as `and`:
/// `Cross-Site Scripting (XSS)` and `cross site scripting xss` fold alike, and so do
/// `Command & Control` and `command-and-control`.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s
        .replace('&', " and ")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word.to_lowercase());
    }
    out
}

/// Whether folded `haystack` contains folded `phrase` as whole words.
pub(crate) fn has_phrase(haystack: &str, phrase: &str) -> bool {
    // Pad both so "sql" matches "sql injection" but not "nosql".
    format!(" {haystack} ").contains(&format!(" {phrase} "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_punctuation_case_and_ampersand() {
        assert_eq!(
            fold("Cross-Site Scripting (XSS) Attempt"),
            "cross site scripting xss attempt"
        );
        assert_eq!(fold("  Command & Control "), "command and control");
        assert_eq!(
            fold("SQL Injection \u{2014} Union/Boolean SQLi"),
            "sql injection union boolean sqli"
        );
        assert_eq!(fold("--"), "");
    }

    #[test]
    fn phrases_match_whole_words_only() {
        assert!(has_phrase("nosql injection", "injection"));
        assert!(!has_phrase("nosql injection", "sql"));
        assert!(has_phrase("ssh brute force", "brute force"));
        assert!(!has_phrase("ssh brute forcer", "brute force"));
    }
}
