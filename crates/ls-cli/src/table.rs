//! The listing commands' tables, laid out as Go's `text/tabwriter` with Litestream's settings
//! (minwidth 0, tabwidth 8, padding 2, padded with spaces, no flags).
//!
//! Every row of our tables has the same number of cells, so Go's column blocks reduce to one
//! width per column: the widest cell of that column plus 2. The last cell of a row is printed
//! as is. Widths count characters (runes) as Go does, not display columns, which is why this is
//! not the `tabwriter` crate (it measures display width).

use std::io::{self, Write};

/// Rows of cells collected in memory and written at once by [`Table::write_to`].
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is `header`.
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|&cell| cell.to_owned()).collect()],
        }
    }

    /// Appends one row.
    pub(crate) fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Writes every row, each cell but the last padded to its column's width plus 2.
    ///
    /// # Errors
    /// When `out` fails.
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            let padded = row.len().saturating_sub(1);
            for (column, cell) in row.iter().take(padded).enumerate() {
                let width = cell.chars().count();
                match widths.get_mut(column) {
                    Some(widest) => *widest = (*widest).max(width),
                    None => widths.push(width),
                }
            }
        }
        let mut text = String::new();
        for row in &self.rows {
            if let Some((last, padded)) = row.split_last() {
                for (cell, width) in padded.iter().zip(&widths) {
                    text.push_str(cell);
                    let fill = width + 2 - cell.chars().count();
                    text.extend(std::iter::repeat_n(' ', fill));
                }
                text.push_str(last);
            }
            text.push('\n');
        }
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(table: &Table) -> String {
        let mut out = Vec::new();
        table.write_to(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_pads_columns_to_widest_plus_two() {
        let mut table = Table::new(&["name", "generation", "lag", "start", "end"]);
        table.push(
            [
                "file",
                "249c268eb6efdc47",
                "40s",
                "2026-11-25T19:28:08Z",
                "2026-11-25T19:28:48Z",
            ]
            .map(String::from)
            .to_vec(),
        );
        table.push(
            [
                "second",
                "249c268eb6efdc47",
                "-8ms",
                "2026-11-25T19:28:48Z",
                "2026-11-25T19:29:29Z",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            render(&table),
            "name    generation        lag   start                 end\n\
             file    249c268eb6efdc47  40s   2026-11-25T19:28:08Z  2026-11-25T19:28:48Z\n\
             second  249c268eb6efdc47  -8ms  2026-11-25T19:28:48Z  2026-11-25T19:29:29Z\n"
        );
    }

    #[test]
    fn table_header_only_is_separated_by_two_spaces() {
        let table = Table::new(&["replica", "generation", "index", "size", "created"]);
        assert_eq!(
            render(&table),
            "replica  generation  index  size  created\n"
        );
    }

    #[test]
    fn table_empty_last_cell_leaves_padding() {
        let mut table = Table::new(&["path", "replicas"]);
        table.push(vec!["/tmp/lt/app.db".to_owned(), "file,second".to_owned()]);
        table.push(vec!["/root/x.db".to_owned(), String::new()]);
        assert_eq!(
            render(&table),
            "path            replicas\n/tmp/lt/app.db  file,second\n/root/x.db      \n"
        );
    }

    #[test]
    fn table_counts_runes_not_bytes() {
        let mut table = Table::new(&["path", "replicas"]);
        table.push(vec!["/donn\u{e9}es.db".to_owned(), "file".to_owned()]);
        assert_eq!(
            render(&table),
            "path         replicas\n/donn\u{e9}es.db  file\n"
        );
    }
}
