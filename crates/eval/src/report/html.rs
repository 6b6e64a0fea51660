//! The report document as a self-contained HTML page (`report.html`).

use std::fmt::Write as _;

use super::document::{Block, Document};

impl Document {
    pub(super) fn html(&self) -> String {
        let mut s = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
             table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\
             th{{background:#f3f3f3}}pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}img{{max-width:100%}}</style>\
             </head><body><h1>{}</h1>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    let _ = writeln!(s, "<h2>{}</h2>", escape(h));
                }
                Block::Para(p) => match p
                    .strip_prefix("```\n")
                    .and_then(|p| p.strip_suffix("\n```"))
                {
                    Some(code) => {
                        let _ = writeln!(s, "<pre>{}</pre>", escape(code));
                    }
                    None => {
                        let _ = writeln!(s, "<p>{}</p>", inline_code(&escape(p)));
                    }
                },
                Block::Table(head, rows) => {
                    s.push_str("<table><tr>");
                    for h in head {
                        let _ = write!(s, "<th>{}</th>", escape(h));
                    }
                    s.push_str("</tr>\n");
                    for r in rows {
                        s.push_str("<tr>");
                        for c in r {
                            let _ = write!(s, "<td>{}</td>", escape(c));
                        }
                        s.push_str("</tr>\n");
                    }
                    s.push_str("</table>\n");
                }
                Block::Image(alt, src) => {
                    let _ = writeln!(
                        s,
                        "<p><img src=\"{}\" alt=\"{}\"></p>",
                        escape(src),
                        escape(alt)
                    );
                }
            }
        }
        s.push_str("</body></html>\n");
        s
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `code` spans in an escaped paragraph.
fn inline_code(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}
