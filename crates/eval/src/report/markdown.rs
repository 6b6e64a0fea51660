//! The report document as Markdown (`report.md`).

use std::fmt::Write as _;

use super::document::{Block, Document};

impl Document {
    pub(super) fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n", self.title);
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    let _ = writeln!(s, "## {h}\n");
                }
                Block::Para(p) => {
                    let _ = writeln!(s, "{p}\n");
                }
                Block::Table(head, rows) => {
                    let cell = |c: &String| c.replace('|', "\\|");
                    let _ = writeln!(
                        s,
                        "| {} |",
                        head.iter().map(cell).collect::<Vec<_>>().join(" | ")
                    );
                    let _ = writeln!(s, "|{}|", vec!["---"; head.len()].join("|"));
                    for r in rows {
                        let _ = writeln!(
                            s,
                            "| {} |",
                            r.iter().map(cell).collect::<Vec<_>>().join(" | ")
                        );
                    }
                    s.push('\n');
                }
                Block::Image(alt, src) => {
                    let _ = writeln!(s, "![{alt}]({src})\n");
                }
            }
        }
        s
    }
}
