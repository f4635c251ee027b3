//! What s3s's XML parser lets through: content after the root element.
//!
//! s3s stops reading an XML body once the root element is closed, so
//! `<Delete>..</Delete>trailing` is accepted as a valid DeleteObjects
//! request. AWS answers `MalformedXML` and does nothing. The front
//! ([`crate::wire`]) reads the bodies of the operations that change state
//! from an XML document (DeleteObjects, CompleteMultipartUpload), checks
//! them here and marks a bad one with [`MalformedBody`]; the operation
//! then refuses the request after s3s has authenticated it.

use s3s::{s3_error, S3Result};

/// Request extension: the XML body has content outside its root element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MalformedBody;

/// Refuses a request the front marked with [`MalformedBody`].
pub(crate) fn refuse_marked(ext: &hyper::http::Extensions) -> S3Result<()> {
    if ext.get::<MalformedBody>().is_some() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    Ok(())
}

/// Whether `doc` has something other than white space, comments and
/// processing instructions before or after its root element, or a second
/// root element. Other faults (an unclosed root, bad tags) are left to
/// the XML parser: this returns `false` for them.
pub(crate) fn has_content_outside_root(doc: &[u8]) -> bool {
    let doc = doc.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(doc);
    let mut depth = 0usize;
    let mut closed = false;
    let mut i = 0;
    while let Some(&b) = doc.get(i) {
        if b != b'<' {
            if depth == 0 && !b.is_ascii_whitespace() {
                return true;
            }
            i += 1;
            continue;
        }
        let rest = &doc[i..];
        let skip_to = |end: &[u8]| find(rest, end).map(|at| i + at + end.len());
        let next = if rest.starts_with(b"<?") {
            skip_to(b"?>")
        } else if rest.starts_with(b"<!--") {
            skip_to(b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            if depth == 0 {
                return true;
            }
            skip_to(b"]]>")
        } else if rest.starts_with(b"<!") {
            if closed || depth > 0 {
                return true;
            }
            declaration_end(rest).map(|at| i + at)
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                closed = true;
            }
            skip_to(b">")
        } else {
            if closed && depth == 0 {
                return true;
            }
            let end = tag_end(rest);
            if let Some(at) = end {
                if rest.get(at.wrapping_sub(2)) != Some(&b'/') {
                    depth += 1;
                } else if depth == 0 {
                    closed = true;
                }
            }
            end.map(|at| i + at)
        };
        match next {
            Some(n) => i = n,
            None => return false,
        }
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Offset just past the `>` ending the start tag at the start of `s`
/// (quoted attribute values may hold `>`).
fn tag_end(s: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in s.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(i + 1),
            None => {}
        }
    }
    None
}

/// Offset just past a `<!DOCTYPE ..>` declaration (with an internal subset).
fn declaration_end(s: &[u8]) -> Option<usize> {
    let mut brackets = 0usize;
    let mut quote = None;
    for (i, &b) in s.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'[' => brackets += 1,
                b']' => brackets = brackets.saturating_sub(1),
                b'>' if brackets == 0 => return Some(i + 1),
                _ => {}
            },
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_root_element_and_trimmings_are_accepted() {
        let ok: &[&[u8]] = &[
            b"<Delete><Object><Key>a</Key></Object></Delete>",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete xmlns=\"x\"><Quiet>true</Quiet></Delete>\n",
            b"\xEF\xBB\xBF<Delete/>",
            b"<!-- c --><Delete a='>'><K><![CDATA[</Delete>x]]></K></Delete><!-- after --> <?pi?>\r\n",
            b"<!DOCTYPE x [<!ENTITY a 'b>'>]><Delete>&a;</Delete>",
            // Left to the XML parser (it refuses them).
            b"<Delete><Object>",
            b"",
            b"<Delete",
        ];
        for doc in ok {
            assert!(
                !has_content_outside_root(doc),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        let bad: &[&[u8]] = &[
            b"<Delete><Object><Key>keep/me</Key></Object></Delete>trailing",
            b"<Delete></Delete><Delete></Delete>",
            b"<Delete/><x/>",
            b"junk<Delete></Delete>",
            b"{}",
            b"<Delete></Delete><![CDATA[x]]>",
            b"<Delete></Delete><!DOCTYPE x>",
        ];
        for doc in bad {
            assert!(
                has_content_outside_root(doc),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn marked_requests_are_refused_as_malformed_xml() {
        let mut ext = hyper::http::Extensions::new();
        assert!(refuse_marked(&ext).is_ok());
        ext.insert(MalformedBody);
        let err = refuse_marked(&ext).unwrap_err();
        assert_eq!(err.code().as_str(), "MalformedXML");
    }
}
