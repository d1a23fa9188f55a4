//! A small element tree over quick-xml, with the line every element starts on, and the helpers
//! the network parser uses to refuse whatever it does not consume.
//!
//! Only what libvirt's network XML uses is kept: elements, attributes and text. Comments, the
//! XML declaration and processing instructions are skipped; a DOCTYPE is refused (libvirt's
//! files never carry one, and entity definitions are a way to blow up a parser). Entity
//! references are the five predefined ones and character references.

use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use quick_xml::XmlVersion;

use crate::error::{ConfigError, ErrorKind};

/// The largest document accepted. `virsh net-dumpxml` of a network with a thousand DHCP hosts
/// is ~100 KiB; this leaves room and bounds the work an untrusted file can cause.
pub(crate) const MAX_INPUT: usize = 1 << 20;
/// The deepest nesting accepted (libvirt's network schema nests five levels).
const MAX_DEPTH: usize = 32;

/// One element: name, attributes in document order, children, and its text content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub line: u32,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The concatenated character data directly inside this element (not its children's).
    pub text: String,
    /// Line of the first non-blank character data, 0 if there is none.
    pub text_line: u32,
}

impl Element {
    fn new(name: String, line: u32, attrs: Vec<(String, String)>) -> Element {
        Element {
            name,
            line,
            attrs,
            children: Vec::new(),
            text: String::new(),
            text_line: 0,
        }
    }

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Children called `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The only child called `name`, or `None`; a second one is an error.
    pub fn single_child<'a>(
        &'a self,
        name: &'a str,
        path: &Path,
    ) -> Result<Option<&'a Element>, ConfigError> {
        let mut found = self.children_named(name);
        let first = found.next();
        if let Some(second) = found.next() {
            return Err(ConfigError::new(
                path,
                second.line,
                ErrorKind::Syntax,
                format!(
                    "<{name}> appears more than once in <{}>; keep one",
                    self.name
                ),
            ));
        }
        Ok(first)
    }

    /// Refuses attributes other than `allowed`; `informational` ones are accepted and dropped
    /// (the caller documents why each is harmless to drop).
    pub fn check_attrs(
        &self,
        allowed: &[&str],
        informational: &[&str],
        path: &Path,
    ) -> Result<(), ConfigError> {
        for (k, _) in &self.attrs {
            if allowed.contains(&k.as_str()) || informational.contains(&k.as_str()) {
                continue;
            }
            return Err(ConfigError::new(
                path,
                self.line,
                ErrorKind::Refused,
                format!(
                    "attribute '{k}' of <{}> is not supported by virtgate; remove it",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Refuses child elements other than `allowed`. `libvirt_known` are elements libvirt
    /// accepts here that virtgate does not support (refused as such); anything else is not
    /// libvirt network XML at all.
    pub fn check_children(
        &self,
        allowed: &[&str],
        libvirt_known: &[&str],
        path: &Path,
    ) -> Result<(), ConfigError> {
        for c in &self.children {
            if allowed.contains(&c.name.as_str()) {
                continue;
            }
            // A prefixed name is a namespace extension (libvirt's <dnsmasq:options>).
            let known = libvirt_known.contains(&c.name.as_str()) || c.name.contains(':');
            let (kind, message) = if known {
                (
                    ErrorKind::Refused,
                    format!(
                        "element <{}> is not supported by virtgate; remove it",
                        c.name
                    ),
                )
            } else {
                (
                    ErrorKind::Unknown,
                    format!(
                        "unknown element <{}> in <{}>; libvirt's network XML has no such element here",
                        c.name, self.name
                    ),
                )
            };
            return Err(ConfigError::new(path, c.line, kind, message));
        }
        Ok(())
    }

    /// Refuses character data in an element that holds only elements (or nothing).
    pub fn check_no_text(&self, path: &Path) -> Result<(), ConfigError> {
        if self.text.trim().is_empty() {
            return Ok(());
        }
        Err(ConfigError::new(
            path,
            self.text_line,
            ErrorKind::Syntax,
            format!("unexpected text inside <{}>; remove it", self.name),
        ))
    }
}

/// Maps byte offsets to 1-based line numbers.
pub(crate) struct Lines {
    newlines: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        Lines {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// The line the byte at `offset` is on.
    pub fn line_of(&self, offset: u64) -> u32 {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let before = self.newlines.partition_point(|&nl| nl < offset);
        u32::try_from(before).unwrap_or(u32::MAX).saturating_add(1)
    }
}

/// Parses `text` into its root element. Never panics; every error carries a line.
pub(crate) fn parse_document(text: &str, path: &Path) -> Result<Element, ConfigError> {
    if text.len() > MAX_INPUT {
        return Err(ConfigError::new(
            path,
            0,
            ErrorKind::Syntax,
            format!(
                "document is {} bytes; virtgate reads network XML of at most {MAX_INPUT} bytes",
                text.len()
            ),
        ));
    }
    // A UTF-8 byte order mark is dropped here: quick-xml skips it without counting it in its
    // offsets, which would shift every line computed from them.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = Lines::new(text);
    let mut reader = Reader::from_str(text);
    {
        let config = reader.config_mut();
        // Whitespace between tags is kept as text so that the offset before each event is the
        // offset of its '<' (trimming would move it back over the blanks and lines).
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
    }

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let start = reader.buffer_position();
        let line = lines.line_of(start);
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                let at = lines.line_of(reader.error_position());
                return Err(ConfigError::new(
                    path,
                    at,
                    ErrorKind::Syntax,
                    format!("malformed XML: {e}"),
                ));
            }
        };
        match event {
            Event::Start(ref s) | Event::Empty(ref s) => {
                let empty = matches!(event, Event::Empty(_));
                let element = start_element(s, line, path)?;
                if root.is_some() && stack.is_empty() {
                    return Err(ConfigError::new(
                        path,
                        line,
                        ErrorKind::Syntax,
                        format!(
                            "element <{}> after the end of the document's root element",
                            element.name
                        ),
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ConfigError::new(
                        path,
                        line,
                        ErrorKind::Syntax,
                        format!("elements nested more than {MAX_DEPTH} deep"),
                    ));
                }
                if empty {
                    close(element, &mut stack, &mut root);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                // quick-xml checks that the name matches the open element.
                if let Some(element) = stack.pop() {
                    close(element, &mut stack, &mut root);
                }
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|e| {
                    ConfigError::new(path, line, ErrorKind::Syntax, format!("bad text: {e}"))
                })?;
                add_text(&mut stack, &s, line, path)?;
            }
            Event::CData(t) => {
                let s = t.xml10_content().map_err(|e| {
                    ConfigError::new(path, line, ErrorKind::Syntax, format!("bad CDATA: {e}"))
                })?;
                add_text(&mut stack, &s, line, path)?;
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_reference(&r, line, path)?;
                add_text(&mut stack, &resolved, line, path)?;
            }
            Event::DocType(_) => {
                return Err(ConfigError::new(
                    path,
                    line,
                    ErrorKind::Refused,
                    "<!DOCTYPE> is not accepted in network XML; remove it",
                ));
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(ConfigError::new(
            path,
            open.line,
            ErrorKind::Syntax,
            format!("<{}> is never closed", open.name),
        ));
    }
    root.ok_or_else(|| {
        ConfigError::new(
            path,
            0,
            ErrorKind::Syntax,
            "no XML element found; expected <network>",
        )
    })
}

fn close(element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn add_text(stack: &mut [Element], s: &str, line: u32, path: &Path) -> Result<(), ConfigError> {
    match stack.last_mut() {
        Some(parent) => {
            if parent.text_line == 0 && !s.trim().is_empty() {
                // The text may start with blank lines; point at its first visible character.
                let lead = s.len() - s.trim_start().len();
                let extra = s.get(..lead).map_or(0, |l| l.matches('\n').count());
                parent.text_line = line.saturating_add(u32::try_from(extra).unwrap_or(0));
            }
            parent.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(ConfigError::new(
            path,
            line,
            ErrorKind::Syntax,
            "text outside the root element",
        )),
    }
}

fn start_element(s: &BytesStart<'_>, line: u32, path: &Path) -> Result<Element, ConfigError> {
    let name = utf8(s.name().as_ref(), line, path)?.to_string();
    let mut attrs = Vec::new();
    for attr in s.attributes() {
        let attr = attr.map_err(|e| {
            ConfigError::new(
                path,
                line,
                ErrorKind::Syntax,
                format!("malformed attribute in <{name}>: {e}"),
            )
        })?;
        let key = utf8(attr.key.as_ref(), line, path)?.to_string();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| {
                ConfigError::new(
                    path,
                    line,
                    ErrorKind::Syntax,
                    format!("bad value of attribute '{key}' in <{name}>: {e}"),
                )
            })?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element::new(name, line, attrs))
}

fn utf8<'a>(bytes: &'a [u8], line: u32, path: &Path) -> Result<&'a str, ConfigError> {
    // The input is a &str, so every slice quick-xml hands back is UTF-8; checked anyway.
    std::str::from_utf8(bytes)
        .map_err(|_| ConfigError::new(path, line, ErrorKind::Syntax, "invalid UTF-8 in a name"))
}

fn resolve_reference(
    r: &quick_xml::events::BytesRef<'_>,
    line: u32,
    path: &Path,
) -> Result<String, ConfigError> {
    let bad = |what: String| ConfigError::new(path, line, ErrorKind::Syntax, what);
    match r.resolve_char_ref() {
        Ok(Some(c)) => return Ok(c.to_string()),
        Ok(None) => {}
        Err(e) => return Err(bad(format!("bad character reference: {e}"))),
    }
    let name = r
        .decode()
        .map_err(|e| bad(format!("bad entity reference: {e}")))?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| {
            bad(format!(
                "unknown entity &{name}; (only &lt; &gt; &amp; &apos; &quot; and character references)"
            ))
        })
}

/// Escapes text for an attribute value written between single quotes, as libvirt does.
pub(crate) fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes element text.
pub(crate) fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Element, ConfigError> {
        parse_document(s, Path::new("t.xml"))
    }

    #[test]
    fn lines_of_elements_and_text() {
        let root =
            p("<?xml version='1.0'?>\n<a x='1'>\n  <b/>\n\n  <c>\n   hi &amp; &#x41;</c>\n</a>\n")
                .unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.line, 2);
        assert_eq!(root.attr("x"), Some("1"));
        assert_eq!(root.children[0].line, 3);
        let c = &root.children[1];
        assert_eq!(c.line, 5);
        assert_eq!(c.text.trim(), "hi & A");
        assert_eq!(c.text_line, 6);
    }

    #[test]
    fn malformed_documents_are_errors_with_lines() {
        let e = p("<a>\n<b>\n</a>\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert!(e.line >= 2, "{e}");
        let e = p("<a>\n<b>\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("<b> is never closed"), "{e}");
        let e = p("<a/>\n<b/>").unwrap_err();
        assert_eq!(e.line, 2);
        let e = p("").unwrap_err();
        assert_eq!(e.line, 0);
        let e = p("<!DOCTYPE a [<!ENTITY x 'y'>]>\n<a>&x;</a>").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Refused);
        let e = p("<a>&bogus;</a>").unwrap_err();
        assert!(e.message.contains("unknown entity"), "{e}");
        let e = p("<a x='1' x='2'/>").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Syntax);
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        let e = p(&deep).unwrap_err();
        assert!(e.message.contains("nested"), "{e}");
        let big = format!("<a>{}</a>", " ".repeat(MAX_INPUT));
        let e = p(&big).unwrap_err();
        assert!(e.message.contains("at most"), "{e}");
    }

    #[test]
    fn bom_and_crlf() {
        let root = p("\u{feff}<a>\r\n<b>x\r\ny</b>\r\n</a>\r\n").unwrap();
        assert_eq!(root.children[0].line, 2);
        assert_eq!(root.children[0].text, "x\ny");
    }

    #[test]
    fn line_of_offsets() {
        let l = Lines::new("a\nbc\n\nd");
        assert_eq!(l.line_of(0), 1);
        assert_eq!(l.line_of(1), 1); // the newline itself belongs to line 1
        assert_eq!(l.line_of(2), 2);
        assert_eq!(l.line_of(5), 3);
        assert_eq!(l.line_of(6), 4);
        assert_eq!(l.line_of(u64::MAX), 4);
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_attr("a'b\"<&>"), "a&apos;b&quot;&lt;&amp;&gt;");
        assert_eq!(escape_text("x<y&z"), "x&lt;y&amp;z");
    }
}
