//! pppd's word reader (`getword` in pppd/options.c), shared by options files and secrets files.
//!
//! The rules, as pppd applies them:
//! - words are separated by white space (space, tab, newline, carriage return, vertical tab,
//!   form feed); `#` outside a word or quotes starts a comment that runs to the end of the line,
//!   and `#` also ends an unquoted word (`abc#x` is the word `abc` then a comment);
//! - `"` or `'` quote a section of a word: inside it white space and `#` are ordinary and only the
//!   same quote character ends it; quoted and unquoted parts join (`a"b c"d` is `ab cd`); `""` is
//!   an empty word; a quoted section may run over several lines;
//! - `\` escapes the next character, inside or outside quotes: `\a \b \f \n \r \t` are the C
//!   control characters, `\s` is a space, `\ddd` is up to three octal digits, `\xhh` up to two hex
//!   digits, any other character stands for itself; backslash-newline is removed (a line
//!   continues), both between and inside words;
//! - for secrets files it matters whether a word is the first on its line: a word is, when an
//!   unescaped newline came before it since the previous word.
//!
//! Where pppd only warns, we refuse (the administrator learns of it at load time rather than by a
//! truncated password): a word longer than pppd's `MAXWORDLEN - 1` (1023 bytes; pppd truncates),
//! a quote left open at the end of the file (pppd takes the rest of the file), a NUL byte (pppd's C
//! strings would cut the word there), and escapes producing bytes that are not UTF-8.
//!
//! Kept exactly, quirks included: `\777` stores its low 8 bits, `\x` with no hex digit stores a
//! NUL (so is refused), and a word made only of quotes at the very end of the file with no
//! newline after it (`... ""<EOF>`) is not a word at all, as in pppd.

use std::path::Path;

use crate::error::{ConfigError, ErrorKind};

/// pppd's `MAXWORDLEN`: a word (with its C terminator) must fit in this many bytes.
pub(crate) const MAX_WORD_LEN: usize = 1024;

/// One word, as pppd's reader returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The word after quote removal and escape processing.
    pub text: String,
    /// 1-based line on which the word starts.
    pub line: u32,
    /// An unescaped newline came before this word (since the previous word).
    pub starts_line: bool,
}

/// C `isspace` in the "C" locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_octal(c: u8) -> bool {
    (b'0'..=b'7').contains(&c)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u32,
}

impl Reader<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.bytes.get(self.pos)?;
        self.pos += 1;
        if c == b'\n' {
            self.line = self.line.saturating_add(1);
        }
        Some(c)
    }

    /// Gives back the byte just read (pppd's `ungetc`).
    fn unget(&mut self, c: u8) {
        self.pos = self.pos.saturating_sub(1);
        if c == b'\n' {
            self.line = self.line.saturating_sub(1);
        }
    }
}

/// Splits `text` into pppd words. `path` is only used for error messages.
pub(crate) fn split(text: &str, path: &Path) -> Result<Vec<Word>, ConfigError> {
    let mut r = Reader {
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut words = Vec::new();
    while let Some(w) = next_word(&mut r, path)? {
        words.push(w);
    }
    Ok(words)
}

fn next_word(r: &mut Reader<'_>, path: &Path) -> Result<Option<Word>, ConfigError> {
    let mut starts_line = false;
    let mut escape = false;
    let mut comment = false;

    // Skip white space and comments.
    let mut c = loop {
        let Some(c) = r.next() else { break None };
        if c == b'\n' {
            // A newline ends a comment; backslash-newline is dropped.
            if escape {
                escape = false;
            } else {
                starts_line = true;
                comment = false;
            }
            continue;
        }
        if comment {
            continue;
        }
        if escape {
            break Some(c); // an escaped character starts a word
        }
        if c == b'\\' {
            escape = true;
            continue;
        }
        if c == b'#' {
            comment = true;
            continue;
        }
        if !is_space(c) {
            break Some(c);
        }
    };

    let line = r.line;
    let mut quote_line = line;
    let mut word: Vec<u8> = Vec::new();
    let mut quoted: Option<u8> = None;

    while let Some(ch) = c {
        if escape {
            escape = false;
            if ch == b'\n' {
                c = r.next();
                continue;
            }
            let mut got_next = false;
            let value: u32 = match ch {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n'.into(),
                b'r' => b'\r'.into(),
                b's' => b' '.into(),
                b't' => b'\t'.into(),
                d if is_octal(d) => {
                    let mut v: u32 = 0;
                    let mut cur = Some(d);
                    let mut n = 0;
                    while let Some(o) = cur.filter(|&o| is_octal(o)) {
                        if n == 3 {
                            break;
                        }
                        v = (v << 3) + u32::from(o - b'0');
                        cur = r.next();
                        n += 1;
                    }
                    c = cur;
                    got_next = true;
                    v
                }
                b'x' => {
                    let mut v: u32 = 0;
                    let mut cur = r.next();
                    let mut n = 0;
                    while let Some(h) = cur.and_then(|h| char::from(h).to_digit(16)) {
                        if n == 2 {
                            break;
                        }
                        v = (v << 4) + h;
                        cur = r.next();
                        n += 1;
                    }
                    c = cur;
                    got_next = true;
                    v
                }
                other => other.into(),
            };
            // pppd stores the value in a C char: only the low 8 bits survive.
            word.push((value & 0xff) as u8);
            if !got_next {
                c = r.next();
            }
            continue;
        }

        if ch == b'\\' {
            escape = true;
            c = r.next();
            continue;
        }

        match quoted {
            Some(q) if ch == q => {
                quoted = None;
                c = r.next();
                continue;
            }
            Some(_) => {}
            None if ch == b'"' || ch == b'\'' => {
                quoted = Some(ch);
                quote_line = r.line;
                c = r.next();
                continue;
            }
            None if is_space(ch) || ch == b'#' => {
                r.unget(ch);
                break;
            }
            None => {}
        }

        word.push(ch);
        c = r.next();
    }

    if c.is_none() {
        // End of file inside the word.
        if let Some(q) = quoted {
            return Err(ConfigError::new(
                path,
                quote_line,
                ErrorKind::Syntax,
                format!(
                    "the quote {q} opened here is never closed; add the closing {q} (pppd would take the rest of the file as one word)",
                    q = char::from(q)
                ),
            ));
        }
        if word.is_empty() {
            // pppd: nothing stored before EOF means "no word", even after `""`.
            return Ok(None);
        }
    }

    if word.len() >= MAX_WORD_LEN {
        return Err(ConfigError::new(
            path,
            line,
            ErrorKind::Syntax,
            format!(
                "word is {} bytes long; pppd keeps at most {} bytes of a word, so shorten it",
                word.len(),
                MAX_WORD_LEN - 1
            ),
        ));
    }
    if word.contains(&0) {
        return Err(ConfigError::new(
            path,
            line,
            ErrorKind::Syntax,
            "word contains a NUL byte (from \\0, \\x00 or \\x without digits); pppd would cut the word there, so remove it",
        ));
    }
    let text = String::from_utf8(word).map_err(|_| {
        ConfigError::new(
            path,
            line,
            ErrorKind::Syntax,
            "escape sequences in this word produce bytes that are not UTF-8; write the characters themselves instead",
        )
    })?;
    Ok(Some(Word {
        text,
        line,
        starts_line,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        split(s, Path::new("t"))
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn quoting_and_escapes_table() {
        let cases: &[(&str, &[&str])] = &[
            ("a b\tc\r\nd", &["a", "b", "c", "d"]),
            ("a#comment b\nc", &["a", "c"]),
            ("  # only a comment\n", &[]),
            ("\"a b\" 'c d'", &["a b", "c d"]),
            ("a\"b c\"d", &["ab cd"]),
            ("\"it's\" 'say \"hi\"'", &["it's", "say \"hi\""]),
            ("\"#notcomment\"", &["#notcomment"]),
            ("\"\" x", &["", "x"]),
            ("a\\ b", &["a b"]),
            ("\\#x", &["#x"]),
            ("\\\"q", &["\"q"]),
            ("\\\\", &["\\"]),
            ("x\\sy", &["x y"]),
            ("\\t\\n", &["\t\n"]),
            ("\\101\\0102", &["A\u{8}2"]),
            ("\\x41\\x4a\\x4", &["AJ\u{4}"]),
            ("\\x414", &["A4"]),
            ("\\q", &["q"]),
            ("ab\\\ncd", &["abcd"]),
            ("ab \\\ncd", &["ab", "cd"]),
            ("\"multi\nline\"", &["multi\nline"]),
            ("\"esc \\\" inside\"", &["esc \" inside"]),
            ("\\141", &["a"]),
        ];
        for (input, want) in cases {
            assert_eq!(texts(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn octal_escape_keeps_low_byte_like_a_c_char() {
        // \501 = 0o501 = 321 -> 321 & 0xff = 0x41 'A'
        assert_eq!(texts("\\501"), ["A"]);
    }

    #[test]
    fn empty_quotes_at_eof_are_not_a_word_like_pppd() {
        assert_eq!(texts("a \"\""), ["a"]);
        assert_eq!(texts("a \"\"\n"), ["a", ""]);
    }

    #[test]
    fn line_numbers_and_line_starts() {
        let w = split("a b\n  c \\\n d\n\n\"e\nf\" g", Path::new("t")).unwrap();
        let got: Vec<(&str, u32, bool)> = w
            .iter()
            .map(|w| (w.text.as_str(), w.line, w.starts_line))
            .collect();
        assert_eq!(
            got,
            [
                ("a", 1, false),
                ("b", 1, false),
                ("c", 2, true),
                ("d", 3, false),
                ("e\nf", 5, true),
                ("g", 6, false),
            ]
        );
    }

    #[test]
    fn refusals_carry_the_line() {
        let cases: &[(&str, u32, &str)] = &[
            ("ok\n\"open", 2, "never closed"),
            ("ok\nx\\0y", 2, "NUL"),
            ("\n\n\\x", 3, "NUL"),
            ("\\377", 1, "UTF-8"),
        ];
        for (input, line, needle) in cases {
            let e = split(input, Path::new("f")).unwrap_err();
            assert_eq!(e.line, *line, "{input:?}");
            assert!(e.message.contains(needle), "{input:?}: {}", e.message);
            assert_eq!(e.kind, ErrorKind::Syntax);
        }
        let long = "x".repeat(MAX_WORD_LEN);
        let e = split(&format!("\n{long}"), Path::new("f")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(texts(&"y".repeat(MAX_WORD_LEN - 1)).len() == 1);
    }

    #[test]
    fn never_panics_on_noise() {
        let mut seed: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let pick = b" \t\n\\\"'#ax0s7\r";
                let c = pick[(seed >> 16) as usize % pick.len()];
                s.push(char::from(c));
            }
            let _ = split(&s, Path::new("f"));
        }
    }
}
