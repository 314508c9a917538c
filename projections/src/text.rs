//! Full-text search over read-model columns: an FTS5 table kept by triggers on SQLite, GIN indexes
//! over `to_tsvector` on Postgres. Words are found, folded and stemmed here in Rust, both in the
//! text that is indexed ([`indexed`]) and in what a person types ([`words`]), so a query answers
//! the same on either backend. Every word of a search must start a word of the text, or its
//! English stem must start a word's stem: "lighth" finds "lighthouse", "foxes" finds "fox".

use crate::runtime::Tables;
use rust_stemmers::{Algorithm, Stemmer};
use std::sync::LazyLock;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

static ENGLISH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Words of a search that count; the rest are ignored.
const MAX_WORDS: usize = 8;
/// Characters of a search word that count.
const MAX_WORD_CHARS: usize = 64;

/// A full-text index over text columns of one of a projection's tables.
pub struct TextIndex {
    /// The name queries use, e.g. `titles_text`.
    pub name: &'static str,
    /// The indexed table (its plain name).
    pub table: &'static str,
    /// The table's key column; SQLite copies it into the index.
    pub key: &'static str,
    /// The indexed text columns.
    pub columns: &'static [&'static str],
}

/// Lowercase, without accents ("Noël" is "noel").
fn fold(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

/// The words in a text: runs of letters and digits, folded, each cut to
/// [`MAX_WORD_CHARS`]. Quotes, operators, punctuation and emoji separate words and are never
/// part of one.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|word| {
            fold(&word.chars().take(MAX_WORD_CHARS).collect::<String>())
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
}

/// A word's English stem, when it differs from the word.
fn stem(word: &str) -> Option<String> {
    let stem = ENGLISH.stem(word);
    (stem != word && !stem.is_empty()).then(|| stem.into_owned())
}

/// Text as it is written into an indexed column: its words, each followed by its stem where
/// that differs ("The Foxes" is "the foxes fox").
pub fn indexed(text: &str) -> String {
    let mut out = Vec::new();
    for word in tokens(text) {
        let stem = stem(&word);
        out.push(word);
        out.extend(stem);
    }
    out.join(" ")
}

/// The words of what a person typed (at most [`MAX_WORDS`]).
pub fn words(text: &str) -> Vec<String> {
    tokens(text).take(MAX_WORDS).collect()
}

impl TextIndex {
    /// Statements that create this index in one generation, after its table.
    pub(crate) fn create(&self, tables: &Tables, sqlite: bool) -> Vec<String> {
        let source = tables.name(self.table);
        let index = tables.name(self.name);
        if !sqlite {
            return self
                .columns
                .iter()
                .map(|c| {
                    format!(
                        "CREATE INDEX {index}_{c} ON {source} USING GIN (to_tsvector('simple', {c}))"
                    )
                })
                .collect();
        }
        let columns = self.columns.join(", ");
        let new_values = self
            .columns
            .iter()
            .map(|c| format!("new.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let key = self.key;
        let insert = format!(
            "INSERT INTO {index} (rowid, {key}, {columns}) VALUES (new.rowid, new.{key}, {new_values});"
        );
        let delete = format!("DELETE FROM {index} WHERE rowid = old.rowid;");
        vec![
            format!("DROP TABLE IF EXISTS {index}"),
            format!(
                "CREATE VIRTUAL TABLE {index} USING fts5({key} UNINDEXED, {columns}, tokenize = 'unicode61 remove_diacritics 2')"
            ),
            format!("CREATE TRIGGER {index}_insert AFTER INSERT ON {source} BEGIN {insert} END"),
            format!(
                "CREATE TRIGGER {index}_update AFTER UPDATE OF {key}, {columns} ON {source} BEGIN {delete} {insert} END"
            ),
            format!("CREATE TRIGGER {index}_delete AFTER DELETE ON {source} BEGIN {delete} END"),
        ]
    }

    /// A condition that `column` of the indexed table holds every word (or its stem) as a
    /// prefix, with its one parameter written `?`, and the value to bind there. `words` must not
    /// be empty.
    pub fn matches(&self, sqlite: bool, column: &str, words: &[String]) -> (String, String) {
        debug_assert!(self.columns.contains(&column));
        // Each word, or each word and its stem as alternatives.
        let each = |prefix: &dyn Fn(&str) -> String, or: &str| {
            words
                .iter()
                .map(|w| match stem(w) {
                    Some(s) => format!("({} {or} {})", prefix(w), prefix(&s)),
                    None => prefix(w),
                })
                .collect::<Vec<_>>()
        };
        if sqlite {
            let (key, name) = (self.key, self.name);
            let query = each(&|w| format!("\"{w}\"*"), "OR").join(" AND ");
            (
                format!("{key} IN (SELECT {key} FROM {name} WHERE {column} MATCH ?)"),
                query,
            )
        } else {
            let query = each(&|w| format!("{w}:*"), "|").join(" & ");
            (
                format!("to_tsvector('simple', {column}) @@ to_tsquery('simple', ?)"),
                query,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_letters_and_digits_only() {
        assert_eq!(
            words("LIGHTHOUSE  brackwater"),
            ["lighthouse", "brackwater"]
        );
        assert_eq!(
            words("'; DROP TABLE titles; --"),
            ["drop", "table", "titles"]
        );
        assert_eq!(words("\") OR 1=1 -- NEAR("), ["or", "1", "1", "near"]);
        assert_eq!(words("a*b\"c:d&e|f!g"), ["a", "b", "c", "d", "e", "f", "g"]);
        assert!(words("🎬🍿 % _ \\ \"").is_empty());
        assert_eq!(words("Café NOËL"), ["cafe", "noel"]);
        assert_eq!(words("Ångström, ÇA VA"), ["angstrom", "ca", "va"]);
        // Only combining marks: nothing to search for.
        assert!(words("\u{345}\u{301}").is_empty());
        let long = words(&"é".repeat(10_000));
        assert_eq!(long.len(), 1);
        assert_eq!(long[0], "e".repeat(MAX_WORD_CHARS));
        assert_eq!(words(&"a ".repeat(100)).len(), MAX_WORDS);
    }

    #[test]
    fn match_values_quote_every_word_as_a_prefix() {
        let ix = TextIndex {
            name: "titles_text",
            table: "titles",
            key: "title_id",
            columns: &["name", "search"],
        };
        let w = words("tin fox");
        assert_eq!(
            ix.matches(true, "search", &w),
            (
                "title_id IN (SELECT title_id FROM titles_text WHERE search MATCH ?)".into(),
                "\"tin\"* AND \"fox\"*".into()
            )
        );
        assert_eq!(ix.matches(false, "name", &w).1, "tin:* & fox:*");
        // A word whose stem differs may match either.
        let w = words("tin foxes");
        assert_eq!(
            ix.matches(true, "search", &w).1,
            "\"tin\"* AND (\"foxes\"* OR \"fox\"*)"
        );
        assert_eq!(ix.matches(false, "name", &w).1, "tin:* & (foxes:* | fox:*)");
    }

    #[test]
    fn indexed_text_keeps_each_word_and_its_stem() {
        assert_eq!(indexed("The Foxes, RUNNING!"), "the foxes fox running run");
        assert_eq!(indexed("Café — 2049"), "cafe 2049");
        assert_eq!(indexed("🎬"), "");
    }
}
