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

/// The records of an uploaded CSV file (RFC 4180: quoted fields may hold the delimiter, a
/// doubled quote, a line break), each with the line it starts on, fields trimmed; records
/// whose first field is empty are skipped. The delimiter is a comma, or a semicolon or a tab
/// when the first line has one of those and no comma (spreadsheets in many locales write
/// semicolons). A byte-order mark is dropped; a file that is not text is refused whole.
pub fn csv_records(text: &str) -> DomainResult<Vec<(i64, Vec<String>)>> {
    // A spreadsheet's "CSV UTF-8" starts with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains('\0') {
        return Err(DomainError::invalid("file", "the file must be text (CSV, UTF-8)"));
    }
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let delimiter = if first.contains(',') {
        b','
    } else if first.contains(';') {
        b';'
    } else if first.contains('\t') {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    // A record's line, counted from its byte offset (the reader's own line count skips blank
    // lines and counts `\r\n` short), newlines counted once as the records go.
    let (mut line, mut counted) = (1i64, 0usize);
    let mut line_at = |byte: usize| {
        // The reader's offset is where the previous record's terminator began: the record
        // itself starts after the line breaks (and blank lines) that follow.
        let mut byte = byte.min(text.len());
        while text.as_bytes().get(byte).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            byte += 1;
        }
        if byte > counted {
            let newlines = text.as_bytes()[counted..byte].iter().filter(|b| **b == b'\n').count();
            line = line.saturating_add(i64::try_from(newlines).unwrap_or(i64::MAX));
            counted = byte;
        }
        line
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let at = e.position().map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
            DomainError::invalid("file", format!("line {} cannot be read as CSV", line_at(at)))
        })?;
        let at = record.position().map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
        let line = line_at(at);
        if record.get(0).is_none_or(str::is_empty) {
            continue;
        }
        out.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(out)
}

/// The rows of a CSV of `email[,end]` (an end as YYYY-MM-DD), with or without a header line
/// naming the columns ([`csv_records`]).
pub fn parse_rows(csv: &str) -> DomainResult<Vec<BulkRow>> {
    let mut rows = Vec::new();
    for (line, fields) in csv_records(csv)? {
        let person = fields.first().cloned().unwrap_or_default();
        if rows.is_empty() && person.eq_ignore_ascii_case("email") {
            continue;
        }
        // Over-long fields are kept short here; the row is refused on its own when assigned.
        let person: String = person.chars().take(321).collect();
        let end: String = fields.get(1).map(|e| e.chars().take(40).collect()).unwrap_or_default();
        rows.push(BulkRow { line, person, end });
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
    fn quoted_fields_keep_their_commas_and_line_breaks() {
        let records = csv_records(
            "email,name\n\"doe@x.example\",\"Doe, Jane\"\n\"a@x.example\",\"two\nlines \"\"quoted\"\"\"\nb@x.example\n",
        )
        .unwrap();
        assert_eq!(
            records,
            vec![
                (1, vec!["email".to_owned(), "name".to_owned()]),
                (2, vec!["doe@x.example".to_owned(), "Doe, Jane".to_owned()]),
                (3, vec!["a@x.example".to_owned(), "two\nlines \"quoted\"".to_owned()]),
                (5, vec!["b@x.example".to_owned()]),
            ]
        );
        let semicolons = csv_records("maya@x.example;2027-01-31\n").unwrap();
        assert_eq!(semicolons, vec![(1, vec!["maya@x.example".to_owned(), "2027-01-31".to_owned()])]);
        assert!(csv_records("a@x.example\0").is_err(), "not text");
    }

    #[test]
    fn a_file_naming_nobody_or_too_many_is_refused_whole() {
        assert!(parse_rows("email\n\n").is_err());
        let many: String = (0..=MAX_ROWS).map(|i| format!("p{i}@x.example\n")).collect();
        assert!(parse_rows(&many).is_err());
    }
}
