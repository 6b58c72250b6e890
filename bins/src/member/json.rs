//! One JSON object per line, written by hand (the binaries take no serialisation crate for
//! a dozen flat event shapes).

use std::fmt::Write;
use thoth::{EndpointId, View};

/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn id(e: EndpointId) -> String {
    string(&e.to_string())
}

pub fn ids(v: &[EndpointId]) -> String {
    format!("[{}]", v.iter().map(|&e| id(e)).collect::<Vec<_>>().join(","))
}

pub fn view(v: &View) -> String {
    let subgroups = v.subgroups.iter().map(|g| ids(g)).collect::<Vec<_>>().join(",");
    format!(
        r#"{{"event":"view","view_id":{},"ltime":{},"coord":{},"members":{},"primary":{},"subgroups":[{}]}}"#,
        string(&format!("{:?}", v.id)),
        v.id.ltime,
        id(v.id.coord),
        ids(&v.members),
        v.primary,
        subgroups
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth::{View, ViewId};

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn views_print_every_field() {
        let v = View {
            id: ViewId { ltime: 3, coord: EndpointId(0x64) },
            members: vec![EndpointId(0x64), EndpointId(0xc8)],
            primary: true,
            subgroups: vec![vec![EndpointId(0x64)], vec![EndpointId(0xc8)]],
        };
        assert_eq!(
            view(&v),
            r#"{"event":"view","view_id":"v3@e64","ltime":3,"coord":"e64","members":["e64","ec8"],"primary":true,"subgroups":[["e64"],["ec8"]]}"#
        );
    }
}
