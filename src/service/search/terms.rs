//! Turning text into index terms: Unicode word segmentation, lower-cased.

use std::collections::BTreeMap;

use unicode_segmentation::UnicodeSegmentation;

/// Longer words are cut to this many bytes, in the index and in queries alike, so a
/// pasted blob cannot make huge keys; two words sharing their first 64 bytes then match.
pub const MAX_TERM_BYTES: usize = 64;

/// The words of `text` as index terms, in order, repeats kept.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.unicode_words().map(normalise)
}

fn normalise(word: &str) -> String {
    let mut term = word.to_lowercase();
    if term.len() > MAX_TERM_BYTES {
        let mut end = MAX_TERM_BYTES;
        while !term.is_char_boundary(end) {
            end -= 1;
        }
        term.truncate(end);
    }
    term
}

/// Each distinct term with its number of occurrences, and the number of words.
pub fn term_frequencies(text: &str) -> (BTreeMap<String, u32>, u32) {
    let mut counts = BTreeMap::new();
    let mut len = 0u32;
    for term in words(text) {
        len = len.saturating_add(1);
        *counts.entry(term).or_insert(0u32) += 1;
    }
    (counts, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_segmented_and_lower_cased() {
        let got: Vec<String> = words("Hello, WORLD! Don't panic: 3.14 Ärger—naïve").collect();
        assert_eq!(
            got,
            ["hello", "world", "don't", "panic", "3.14", "ärger", "naïve"]
        );
        assert_eq!(words("  ... !!! ").count(), 0);
    }

    #[test]
    fn ideographs_are_single_terms() {
        let got: Vec<String> = words("你好世界").collect();
        assert_eq!(got, ["你", "好", "世", "界"]);
    }

    #[test]
    fn long_words_are_cut_on_a_character_boundary() {
        let long = "é".repeat(40);
        let term = words(&long).next().unwrap();
        assert!(term.len() <= MAX_TERM_BYTES);
        assert_eq!(term, "é".repeat(32));
    }

    #[test]
    fn frequencies_count_repeats() {
        let (counts, len) = term_frequencies("the cat and the hat");
        assert_eq!(len, 5);
        assert_eq!(counts["the"], 2);
        assert_eq!(counts["cat"], 1);
    }
}
