//! Bulk assignment: the rows of an uploaded CSV, read before anything is done, so a file that
//! cannot be read at all is refused whole and a bad row is only that row's problem.

use super::error::{DomainError, DomainResult};

/// Rows one file may hold.
pub const MAX_ROWS: usize = 5000;

/// One row to assign: its line in the file, the person (an email), an optional end day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkRow {
    pub line: i64,
    pub person: String,
    pub end: String,
}

/// The rows of a CSV of `email[,end]` (an end as YYYY-MM-DD), with or without a header line
/// naming the columns; blank lines are skipped, quotes around a field are dropped.
pub fn parse_rows(csv: &str) -> DomainResult<Vec<BulkRow>> {
    // A spreadsheet's "CSV UTF-8" starts with a byte-order mark.
    let csv = csv.strip_prefix('\u{feff}').unwrap_or(csv);
    if csv.contains('\0') {
        return Err(DomainError::invalid("file", "the file must be text (CSV, UTF-8)"));
    }
    let mut rows = Vec::new();
    for (i, line) in csv.lines().enumerate() {
        let line_no = i64::try_from(i + 1).unwrap_or(i64::MAX);
        let fields: Vec<String> =
            line.split([',', ';', '\t']).map(|f| f.trim().trim_matches('"').trim().to_owned()).collect();
        let person = fields.first().cloned().unwrap_or_default();
        if person.is_empty() {
            continue;
        }
        if rows.is_empty() && person.eq_ignore_ascii_case("email") {
            continue;
        }
        // Over-long fields are kept short here; the row is refused on its own when assigned.
        let person: String = person.chars().take(321).collect();
        let end: String = fields.get(1).map(|e| e.chars().take(40).collect()).unwrap_or_default();
        rows.push(BulkRow { line: line_no, person, end });
        if rows.len() > MAX_ROWS {
            return Err(DomainError::invalid("file", format!("at most {MAX_ROWS} people per file")));
        }
    }
    if rows.is_empty() {
        return Err(DomainError::invalid(
            "file",
            "the file names nobody: one email per line, optionally an end date after a comma",
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rows_keep_their_line_numbers_and_skip_the_header_and_blanks() {
        let rows = parse_rows("\u{feff}email,end\r\nmaya@x.example\n\n\"tom@x.example\", 2027-01-31\n").unwrap();
        assert_eq!(
            rows,
            vec![
                BulkRow { line: 2, person: "maya@x.example".into(), end: String::new() },
                BulkRow { line: 4, person: "tom@x.example".into(), end: "2027-01-31".into() },
            ]
        );
    }

    #[test]
    fn a_file_naming_nobody_or_too_many_is_refused_whole() {
        assert!(parse_rows("email\n\n").is_err());
        let many: String = (0..=MAX_ROWS).map(|i| format!("p{i}@x.example\n")).collect();
        assert!(parse_rows(&many).is_err());
    }
}
