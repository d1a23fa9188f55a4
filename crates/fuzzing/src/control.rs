//! Fuzz target for the control socket's request parser (`virtgate-control`), fed exactly as
//! the daemon feeds it: the input is a connection's byte stream, cut into lines of at most
//! `MAX_LINE` bytes (each ends at a newline or at the limit), each parsed with
//! `parse_request_line`.
//!
//! Checked: no panic whatever the bytes; an accepted request re-encodes to one line that parses
//! back to the same request (so the CLI's encoder and the daemon's parser agree); a refused one
//! gets a non-empty, one-line error message; an over-long line is refused.

use virtgate_control::{encode, parse_request_line, MAX_LINE};

pub fn control_request(data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        let window = rest.get(..MAX_LINE).unwrap_or(rest);
        let len = window
            .iter()
            .position(|b| *b == b'\n')
            .map_or(window.len(), |i| i + 1);
        let (line, tail) = rest.split_at(len);
        rest = tail;
        let complete = line.ends_with(b"\n");
        match parse_request_line(line, complete) {
            Ok(req) => {
                let again = encode(&req);
                assert!(
                    again.ends_with('\n') && again.matches('\n').count() == 1,
                    "encoded request is not one line: {again:?}"
                );
                assert_eq!(
                    parse_request_line(again.as_bytes(), true).as_ref(),
                    Ok(&req),
                    "request does not survive encode/parse: {again:?}"
                );
            }
            Err(message) => {
                assert!(!message.is_empty(), "empty error message");
                let json = encode(&message);
                assert_eq!(json.matches('\n').count(), 1, "{json:?}");
            }
        }
        if !complete && line.len() >= MAX_LINE {
            assert!(
                parse_request_line(line, false).is_err(),
                "over-long line accepted"
            );
        }
    }
}
