//! Reader for tabular data in CSV files (a scikit-learn or pandas user's training
//! data: sensor readings, measurements), and the seeded, stratified split of its rows.
//!
//! # What a file must look like
//! - UTF-8 text, comma-separated, fields quoted as RFC 4180 says when they need it;
//!   spaces around a field are ignored.
//! - A **header row** naming every column; names are unique and not empty.
//! - One **label column** ([`LabelColumn`]: by name, by number, or the last one); every
//!   other column is a **feature**, a finite number in `f32` range (`1`, `-0.5`,
//!   `3e-4`). An empty cell, `NaN` or `inf` is refused: a missing value must be filled
//!   in (or its row dropped) before training, as the user knows best how.
//! - Every row has as many cells as the header.
//! - **Labels** are integers (`0`, `1`, …: the classes are `0..=max`, with no names) or
//!   any other strings, which are then the class names: the class index is the
//!   position of the name in the byte-wise sorted list of the training file's distinct
//!   labels (`"benign" < "malignant"`). If one label of the training file is not a
//!   whole number, every label is a name. At most [`MAX_CLASSES`] classes.
//! - A test file must have the training file's header, and only labels the training
//!   file has ([`Classes`]).
//!
//! Every error names the file, the row as a spreadsheet shows it (the header is row 1,
//! so the first data row is row 2; a blank line counts as a row, as in an editor) and
//! the column by number (from 1) and name.
//!
//! # The split
//! [`stratified_split`] takes a share of every class's rows at random from a seed: the
//! same rows on every machine (integer arithmetic and the SplitMix64 generator, no
//! floating point in the choice), so a model's test figure can be reproduced anywhere.

use std::path::{Path, PathBuf};

/// Largest file read, in bytes: the parsed values take as much memory again.
pub const MAX_BYTES: u64 = 1 << 30;

/// Most classes a label column may have (labels are stored as bytes).
pub const MAX_CLASSES: usize = 256;

/// Most columns a file may have.
pub const MAX_COLUMNS: usize = 1 << 16;

/// A problem with a CSV file; `Display` names the file, and the row and column when
/// there is one, on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_BYTES`].
    #[error("{path}: {bytes} bytes is more than the {limit} a CSV file may have")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// [`MAX_BYTES`].
        limit: u64,
    },
    /// The file is not valid CSV (or not UTF-8) at some row.
    #[error("{path}: row {row}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The row (1-based line).
        row: u64,
        /// What the CSV parser said.
        message: String,
    },
    /// The file has no header row.
    #[error("{path}: the file is empty (a header row naming the columns is needed)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The header has fewer than two columns or more than [`MAX_COLUMNS`].
    #[error("{path}: the header has {columns} columns; a CSV file needs at least one feature column and a label column (and at most {MAX_COLUMNS} columns)")]
    BadColumnCount {
        /// The file.
        path: PathBuf,
        /// Columns in the header.
        columns: usize,
    },
    /// A header cell is empty.
    #[error("{path}: row 1, column {column}: the header names no column here (every column needs a name)")]
    UnnamedColumn {
        /// The file.
        path: PathBuf,
        /// The column (from 1).
        column: usize,
    },
    /// Two header cells are the same.
    #[error("{path}: row 1: columns {first} and {second} are both named '{name}'")]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
        /// The first column of that name (from 1).
        first: usize,
        /// The second (from 1).
        second: usize,
    },
    /// The label column asked for is not in the header.
    #[error("{path}: no label column '{wanted}' (the columns are {columns})")]
    NoLabelColumn {
        /// The file.
        path: PathBuf,
        /// The name or number asked for.
        wanted: String,
        /// The header's names, shortened when there are many.
        columns: String,
    },
    /// A row has more or fewer cells than the header.
    #[error("{path}: row {row} has {found} cells but the header has {expected} columns")]
    Ragged {
        /// The file.
        path: PathBuf,
        /// The row.
        row: u64,
        /// Cells in that row.
        found: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// A feature cell is empty.
    #[error(
        "{path}: row {row}, column {column} ({name}): missing value (fill it in or drop the row)"
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// The row.
        row: u64,
        /// The column (from 1).
        column: usize,
        /// The column's name.
        name: String,
    },
    /// A feature cell is not a number.
    #[error("{path}: row {row}, column {column} ({name}): '{cell}' is not a number")]
    NotANumber {
        /// The file.
        path: PathBuf,
        /// The row.
        row: u64,
        /// The column (from 1).
        column: usize,
        /// The column's name.
        name: String,
        /// The cell (shortened when long).
        cell: String,
    },
    /// A feature cell is NaN, infinite, or too large for `f32`.
    #[error(
        "{path}: row {row}, column {column} ({name}): '{cell}' is not a finite number in f32 range"
    )]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// The row.
        row: u64,
        /// The column (from 1).
        column: usize,
        /// The column's name.
        name: String,
        /// The cell (shortened when long).
        cell: String,
    },
    /// A label cell is empty.
    #[error("{path}: row {row}, column {column} ({name}): missing label")]
    MissingLabel {
        /// The file.
        path: PathBuf,
        /// The row.
        row: u64,
        /// The label column (from 1).
        column: usize,
        /// Its name.
        name: String,
    },
    /// The labels make more than [`MAX_CLASSES`] classes.
    #[error("{path}: row {row}: label '{label}' makes more than {MAX_CLASSES} classes (integer labels must be 0 to 255; names at most 256 distinct)")]
    TooManyClasses {
        /// The file.
        path: PathBuf,
        /// The first row whose label goes past the limit.
        row: u64,
        /// Its label (shortened when long).
        label: String,
    },
    /// A test file's label is not a class of the training file.
    #[error("{path}: row {row}: label '{label}' is not a class of the training file {training} ({classes})")]
    UnknownClass {
        /// The file.
        path: PathBuf,
        /// The row.
        row: u64,
        /// The label (shortened when long).
        label: String,
        /// The training file.
        training: PathBuf,
        /// The training file's classes, shortened when there are many.
        classes: String,
    },
    /// A test file's header is not the training file's.
    #[error("{path}: the header differs from the training file {training}'s: {difference}")]
    HeaderMismatch {
        /// The file.
        path: PathBuf,
        /// The training file.
        training: PathBuf,
        /// The first difference, as a phrase.
        difference: String,
    },
    /// The file has fewer data rows than needed.
    #[error("{path}: {rows} data rows; at least {needed} are needed")]
    TooFewRows {
        /// The file.
        path: PathBuf,
        /// Data rows read.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
}

/// Which column holds the labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LabelColumn {
    /// The last column.
    #[default]
    Last,
    /// The column with this name in the header or, when no column has that name and it
    /// is a whole number, the column with that number (from 1, as errors count).
    Named(String),
}

impl LabelColumn {
    /// The 0-based index of this column in `header`.
    fn find(&self, header: &[String], path: &Path) -> Result<usize, TableError> {
        match self {
            LabelColumn::Last => Ok(header.len() - 1),
            LabelColumn::Named(name) => header
                .iter()
                .position(|h| h == name)
                .or_else(|| {
                    name.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| (1..=header.len()).contains(&n))
                        .map(|n| n - 1)
                })
                .ok_or_else(|| TableError::NoLabelColumn {
                    path: path.to_owned(),
                    wanted: name.clone(),
                    columns: list(header),
                }),
        }
    }
}

impl std::fmt::Display for LabelColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelColumn::Last => f.write_str("the last column"),
            LabelColumn::Named(n) => f.write_str(n),
        }
    }
}

/// A training file's classes: what a test file's labels are mapped through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classes {
    /// Integer labels `0..count`; `seen[c]` is true for the labels that occur.
    Integers {
        /// `max + 1`.
        count: usize,
        /// Which labels occur in the training file.
        seen: Vec<bool>,
    },
    /// Named labels, sorted byte-wise: label `names[c]` is class `c`.
    Names(Vec<String>),
}

impl Classes {
    /// The number of classes (the network's outputs).
    pub fn count(&self) -> usize {
        match self {
            Classes::Integers { count, .. } => *count,
            Classes::Names(names) => names.len(),
        }
    }

    /// The class names, for labels that were names.
    pub fn names(&self) -> Option<&[String]> {
        match self {
            Classes::Integers { .. } => None,
            Classes::Names(names) => Some(names),
        }
    }

    /// The class of `label`, if the training file has it.
    fn class_of(&self, label: &str) -> Option<u8> {
        match self {
            Classes::Integers { seen, .. } => integer_label(label)
                .filter(|&v| seen.get(v as usize) == Some(&true))
                .map(|v| v as u8),
            Classes::Names(names) => names
                .binary_search_by(|n| n.as_str().cmp(label))
                .ok()
                .map(|c| c as u8),
        }
    }

    fn describe(&self) -> String {
        match self {
            Classes::Integers { seen, .. } => {
                let present: Vec<String> = seen
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| s)
                    .map(|(c, _)| c.to_string())
                    .collect();
                list(&present)
            }
            Classes::Names(names) => list(names),
        }
    }
}

/// A CSV file read: features row-major, one class index per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The file (as given).
    pub path: PathBuf,
    /// The feature columns' names, in file order.
    pub feature_names: Vec<String>,
    /// The label column's name.
    pub label_name: String,
    /// The label column's index in the file (from 0).
    pub label_index: usize,
    /// `rows × features` values, row-major, in file order.
    pub values: Vec<f32>,
    /// One class index per row.
    pub labels: Vec<u8>,
    /// The file's row number of every data row (for messages; the header is row 1).
    pub row_numbers: Vec<u64>,
    /// The classes (the training file's, for a test file).
    pub classes: Classes,
}

impl Table {
    /// Feature columns.
    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    /// Data rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no data rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The features of row `index` (from 0, data rows only).
    pub fn row(&self, index: usize) -> &[f32] {
        let n = self.features();
        &self.values[index * n..(index + 1) * n]
    }

    /// The rows `indices` of this table, in that order, as a new table.
    pub fn select(&self, indices: &[usize]) -> Table {
        let mut values = Vec::with_capacity(indices.len() * self.features());
        for &i in indices {
            values.extend_from_slice(self.row(i));
        }
        Table {
            path: self.path.clone(),
            feature_names: self.feature_names.clone(),
            label_name: self.label_name.clone(),
            label_index: self.label_index,
            values,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            row_numbers: indices.iter().map(|&i| self.row_numbers[i]).collect(),
            classes: self.classes.clone(),
        }
    }
}

/// Reads a training file: its header, features and labels, and its classes from its
/// labels. At least `min_rows` data rows are needed.
///
/// # Errors
/// Any problem of the file ([`TableError`]), with its row and column.
pub fn read_training(
    path: &Path,
    label: &LabelColumn,
    min_rows: usize,
) -> Result<Table, TableError> {
    let bytes = read_limited(path)?;
    parse(&bytes, path, Kind::Training(label), min_rows)
}

/// Reads a test file against the training file `training`: the same header, labels
/// mapped through its classes (a class it does not have is an error).
///
/// # Errors
/// Any problem of the file ([`TableError`]), with its row and column.
pub fn read_test(path: &Path, training: &Table) -> Result<Table, TableError> {
    let bytes = read_limited(path)?;
    parse_test(&bytes, path, training)
}

/// [`read_training`] for a file already in memory; `name` names it in errors.
///
/// # Errors
/// As [`read_training`].
pub fn parse_training(
    bytes: &[u8],
    name: &Path,
    label: &LabelColumn,
    min_rows: usize,
) -> Result<Table, TableError> {
    parse(bytes, name, Kind::Training(label), min_rows)
}

/// [`read_test`] for a file already in memory; `name` names it in errors.
///
/// # Errors
/// As [`read_test`].
pub fn parse_test(bytes: &[u8], name: &Path, training: &Table) -> Result<Table, TableError> {
    parse(bytes, name, Kind::Test(training), 1)
}

/// Reads rows to classify: a file with the training file's header (its labels are
/// then read and checked, as a test file's), or with the training file's feature
/// columns only, in the same order (then [`Table::labels`] is empty).
///
/// # Errors
/// Any problem of the file ([`TableError`]), with its row and column.
pub fn read_rows(path: &Path, training: &Table) -> Result<Table, TableError> {
    let bytes = read_limited(path)?;
    parse_rows(&bytes, path, training)
}

/// [`read_rows`] for a file already in memory; `name` names it in errors.
///
/// # Errors
/// As [`read_rows`].
pub fn parse_rows(bytes: &[u8], name: &Path, training: &Table) -> Result<Table, TableError> {
    match parse(bytes, name, Kind::Test(training), 1) {
        Err(TableError::HeaderMismatch { .. }) => {
            parse(bytes, name, Kind::FeaturesOnly(training), 1)
        }
        result => result,
    }
}

/// The file's bytes, refusing a file larger than [`MAX_BYTES`] before reading it
/// (and a growing one after reading that much).
fn read_limited(path: &Path) -> Result<Vec<u8>, TableError> {
    use std::io::Read;
    let io = |source| TableError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // A regular file says its size: refuse it before reading a byte.
    if let Ok(m) = file.metadata() {
        if m.is_file() && m.len() > MAX_BYTES {
            return Err(TableError::TooLarge {
                path: path.to_owned(),
                bytes: m.len(),
                limit: MAX_BYTES,
            });
        }
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(TableError::TooLarge {
            path: path.to_owned(),
            bytes: std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len()),
            limit: MAX_BYTES,
        });
    }
    Ok(bytes)
}

/// Cells longer than this are shortened in messages.
const SHOWN: usize = 40;

/// `text`, cut to [`SHOWN`] characters with an ellipsis.
fn shorten(text: &str) -> String {
    if text.chars().count() <= SHOWN {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(SHOWN).collect();
        s.push('…');
        s
    }
}

/// Names as a short list for messages: `a, b, c` or `a, b, … (40 in all)`.
fn list(names: &[String]) -> String {
    const MOST: usize = 8;
    let shown: Vec<String> = names.iter().take(MOST).map(|n| shorten(n)).collect();
    if names.len() > MOST {
        format!("{}, … ({} in all)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

/// The value of an integer label (ASCII digits only: no sign, no decimal point), or
/// `None` if the text is not a whole number.
fn integer_label(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are allowed ("007" is 7); a number too long for u64 is still a
    // whole number, and far past the class limit.
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

/// What [`parse`] reads: a training file, a test file (against the training file), or
/// a file of features only (the training file's header without its label column).
#[derive(Clone, Copy)]
enum Kind<'a> {
    Training(&'a LabelColumn),
    Test(&'a Table),
    FeaturesOnly(&'a Table),
}

fn parse(bytes: &[u8], path: &Path, kind: Kind<'_>, min_rows: usize) -> Result<Table, TableError> {
    let training = match kind {
        Kind::Training(_) => None,
        Kind::Test(t) | Kind::FeaturesOnly(t) => Some(t),
    };
    let malformed_at = |e: csv::Error, row: u64| TableError::Malformed {
        path: path.to_owned(),
        row,
        message: match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 text".to_owned(),
            _ => e.to_string(),
        },
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut records = reader.records();
    let header: Vec<String> = match records.next() {
        None => {
            return Err(TableError::Empty {
                path: path.to_owned(),
            })
        }
        Some(r) => r
            .map_err(|e| malformed_at(e, 1))?
            .iter()
            .map(str::to_owned)
            .collect(),
    };
    // A byte-order mark is not part of the first name.
    let mut header = header;
    if let Some(first) = header.first_mut() {
        if let Some(rest) = first.strip_prefix('\u{feff}') {
            *first = rest.trim().to_owned();
        }
    }
    let least = if matches!(kind, Kind::FeaturesOnly(_)) {
        1
    } else {
        2
    };
    if header.len() < least || header.len() > MAX_COLUMNS {
        return Err(TableError::BadColumnCount {
            path: path.to_owned(),
            columns: header.len(),
        });
    }
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(TableError::UnnamedColumn {
                path: path.to_owned(),
                column: i + 1,
            });
        }
        if let Some(j) = header[..i].iter().position(|h| h == name) {
            return Err(TableError::DuplicateColumn {
                path: path.to_owned(),
                name: shorten(name),
                first: j + 1,
                second: i + 1,
            });
        }
    }
    if let Some(t) = training {
        let mut expected = t.feature_names.clone();
        if matches!(kind, Kind::Test(_)) {
            expected.insert(t.label_index, t.label_name.clone());
        }
        if let Some(difference) = header_difference(&header, &expected) {
            return Err(TableError::HeaderMismatch {
                path: path.to_owned(),
                training: t.path.clone(),
                difference,
            });
        }
    }
    // No label column: an index past the last column.
    let label_index = match kind {
        Kind::Training(label) => label.find(&header, path)?,
        Kind::Test(t) => t.label_index,
        Kind::FeaturesOnly(_) => header.len(),
    };
    let features = header.len() - usize::from(label_index < header.len());
    let mut values = Vec::new();
    let mut raw_labels: Vec<String> = Vec::new();
    let mut row_numbers = Vec::new();
    // The parser's own line count skips blank lines; an editor's does not.
    let mut lines = LineCounter::default();
    for record in records {
        let record = record.map_err(|e| {
            let at = e.position().map_or(0, csv::Position::byte);
            malformed_at(e, lines.line_at(bytes, at))
        })?;
        let row = lines.line_at(bytes, record.position().map_or(0, csv::Position::byte));
        if record.len() != header.len() {
            return Err(TableError::Ragged {
                path: path.to_owned(),
                row,
                found: record.len(),
                expected: header.len(),
            });
        }
        for (column, cell) in record.iter().enumerate() {
            if column == label_index {
                if cell.is_empty() {
                    return Err(TableError::MissingLabel {
                        path: path.to_owned(),
                        row,
                        column: column + 1,
                        name: header[column].clone(),
                    });
                }
                raw_labels.push(cell.to_owned());
                continue;
            }
            values.push(feature_value(cell, path, row, column, &header[column])?);
        }
        row_numbers.push(row);
    }
    if row_numbers.len() < min_rows.max(1) {
        return Err(TableError::TooFewRows {
            path: path.to_owned(),
            rows: row_numbers.len(),
            needed: min_rows.max(1),
        });
    }
    let classes = match training {
        Some(t) => t.classes.clone(),
        None => classes_of(&raw_labels, &row_numbers, path)?,
    };
    if let Kind::FeaturesOnly(t) = kind {
        return Ok(Table {
            path: path.to_owned(),
            feature_names: header,
            label_name: t.label_name.clone(),
            label_index: t.label_index,
            values,
            labels: Vec::new(),
            row_numbers,
            classes,
        });
    }
    let mut labels = Vec::with_capacity(raw_labels.len());
    for (text, &row) in raw_labels.iter().zip(&row_numbers) {
        match classes.class_of(text) {
            Some(c) => labels.push(c),
            None => {
                return Err(TableError::UnknownClass {
                    path: path.to_owned(),
                    row,
                    label: shorten(text),
                    training: training.map_or_else(|| path.to_owned(), |t| t.path.clone()),
                    classes: classes.describe(),
                })
            }
        }
    }
    let mut feature_names = header;
    let label_name = feature_names.remove(label_index);
    debug_assert_eq!(values.len(), labels.len() * features);
    Ok(Table {
        path: path.to_owned(),
        feature_names,
        label_name,
        label_index,
        values,
        labels,
        row_numbers,
        classes,
    })
}

impl Table {
    /// The table as CSV text that [`parse_training`] reads back to the same table:
    /// the header with the label column in its place, every value in the shortest
    /// decimal form that reads back to the same `f32`, labels as the class names (or
    /// numbers).
    pub fn to_csv(&self) -> Vec<u8> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<&str> = self.feature_names.iter().map(String::as_str).collect();
        header.insert(self.label_index, &self.label_name);
        // Writing to memory cannot fail.
        let _ = writer.write_record(&header);
        for (i, &label) in self.labels.iter().enumerate() {
            let mut cells: Vec<String> = self.row(i).iter().map(f32::to_string).collect();
            let name = match self.classes.names() {
                Some(names) => names[usize::from(label)].clone(),
                None => label.to_string(),
            };
            cells.insert(self.label_index, name);
            let _ = writer.write_record(&cells);
        }
        writer.into_inner().unwrap_or_default()
    }
}

/// The 1-based line of a byte offset, counted forward from the last offset asked
/// about (offsets only grow as records are read).
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: u64,
}

impl LineCounter {
    fn line_at(&mut self, bytes: &[u8], offset: u64) -> u64 {
        let mut offset = (offset as usize).min(bytes.len());
        // A record's position is where the parser began looking for it, before the
        // blank lines it skipped.
        while offset < bytes.len() && matches!(bytes[offset], b'\n' | b'\r') {
            offset += 1;
        }
        if offset > self.offset {
            self.newlines += bytes[self.offset..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.offset = offset;
        }
        self.newlines + 1
    }
}

/// The first difference between a test file's header and the training file's.
fn header_difference(found: &[String], expected: &[String]) -> Option<String> {
    if let Some(i) = (0..found.len().min(expected.len())).find(|&i| found[i] != expected[i]) {
        return Some(format!(
            "column {} is '{}', the training file's is '{}'",
            i + 1,
            shorten(&found[i]),
            shorten(&expected[i])
        ));
    }
    (found.len() != expected.len()).then(|| {
        format!(
            "{} columns, the training file has {}",
            found.len(),
            expected.len()
        )
    })
}

/// A feature cell's value: a finite `f32` (parsed straight to `f32`, so correctly
/// rounded once).
fn feature_value(
    cell: &str,
    path: &Path,
    row: u64,
    column: usize,
    name: &str,
) -> Result<f32, TableError> {
    if cell.is_empty() {
        return Err(TableError::Missing {
            path: path.to_owned(),
            row,
            column: column + 1,
            name: name.to_owned(),
        });
    }
    match cell.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(TableError::NotFinite {
            path: path.to_owned(),
            row,
            column: column + 1,
            name: name.to_owned(),
            cell: shorten(cell),
        }),
        Err(_) => Err(TableError::NotANumber {
            path: path.to_owned(),
            row,
            column: column + 1,
            name: name.to_owned(),
            cell: shorten(cell),
        }),
    }
}

/// The classes a training file's labels make (see the module docs).
fn classes_of(labels: &[String], rows: &[u64], path: &Path) -> Result<Classes, TableError> {
    let too_many = |i: usize| TableError::TooManyClasses {
        path: path.to_owned(),
        row: rows[i],
        label: shorten(&labels[i]),
    };
    let integers: Option<Vec<u64>> = labels.iter().map(|l| integer_label(l)).collect();
    if let Some(values) = integers {
        let mut seen = vec![false; MAX_CLASSES];
        for (i, &v) in values.iter().enumerate() {
            if v >= MAX_CLASSES as u64 {
                return Err(too_many(i));
            }
            seen[v as usize] = true;
        }
        let count = seen.iter().rposition(|&s| s).map_or(0, |m| m + 1);
        seen.truncate(count);
        return Ok(Classes::Integers { count, seen });
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        if let Err(at) = names.binary_search(&l.as_str()) {
            if names.len() == MAX_CLASSES {
                return Err(too_many(i));
            }
            names.insert(at, l);
        }
    }
    Ok(Classes::Names(
        names.into_iter().map(str::to_owned).collect(),
    ))
}

/// How many rows of a set [`stratified_split`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// This many parts per million of the rows (rounded half up to whole rows).
    PartsPerMillion(u32),
    /// This many rows.
    Rows(usize),
}

impl Share {
    /// A fraction in `(0, 1)` as parts per million (rounded to the nearest: the one
    /// floating-point step, exact and the same on every machine).
    pub fn fraction(f: f64) -> Option<Share> {
        (f.is_finite() && f > 0.0 && f < 1.0)
            .then(|| Share::PartsPerMillion((f * 1e6).round() as u32))
            .filter(|s| !matches!(s, Share::PartsPerMillion(0 | 1_000_000)))
    }

    /// The rows of `n` this share takes.
    pub fn of(self, n: usize) -> usize {
        match self {
            Share::PartsPerMillion(ppm) => {
                ((n as u128 * u128::from(ppm) + 500_000) / 1_000_000) as usize
            }
            Share::Rows(r) => r.min(n),
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit state advanced by
/// `0x9e3779b97f4a7c15`, each output mixed by two xor-shift-multiplies. Chosen because
/// it is a few lines in any language, so another tool can repeat a split.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`), without bias: outputs in the last
    /// incomplete run of `n` values are drawn again.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Splits the rows of `labels` (class indices below `classes`) into a kept part and
/// a taken part of about `share` of the rows, class by class, from `seed`:
///
/// 1. The number taken is `share` of all the rows ([`Share::of`]), given out to the
///    classes in proportion to their rows by largest remainder: class `c` with `n_c` of
///    the `n` rows gets `⌊t·n_c/n⌋`, and the rows left over go one each to the classes
///    with the largest remainders `t·n_c mod n` (ties to the lower class). A class
///    never gives up its last row (the kept part must know every class), so the taken
///    part can be a little smaller than asked.
/// 2. Class by class in index order, the class's row indices in ascending order are
///    shuffled by Fisher–Yates (for `i` from the last position down to 1, swap `i` with
///    [`SplitMix64::below`]`(i + 1)`), one generator seeded with `seed` serving every
///    class; the first of the shuffled rows are taken.
///
/// Returns (kept, taken), each in ascending row order.
pub fn stratified_split(
    labels: &[u8],
    classes: usize,
    share: Share,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let n = labels.len();
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        rows_of[usize::from(l)].push(i);
    }
    let total = share.of(n) as u128;
    let mut quota: Vec<usize> = Vec::with_capacity(classes);
    let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(classes);
    for (c, rows) in rows_of.iter().enumerate() {
        let scaled = total * rows.len() as u128;
        let n = n.max(1) as u128;
        quota.push((scaled / n) as usize);
        remainders.push((scaled % n, c));
    }
    let given: usize = quota.iter().sum();
    // Largest remainder first, then the lower class.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, c) in remainders.iter().take(total as usize - given) {
        quota[c] += 1;
    }
    let mut rng = SplitMix64::new(seed);
    let (mut kept, mut taken) = (Vec::new(), Vec::new());
    for (c, rows) in rows_of.iter_mut().enumerate() {
        for i in (1..rows.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            rows.swap(i, j);
        }
        let take = quota[c].min(rows.len().saturating_sub(1));
        taken.extend_from_slice(&rows[..take]);
        kept.extend_from_slice(&rows[take..]);
    }
    kept.sort_unstable();
    taken.sort_unstable();
    (kept, taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<Table, TableError> {
        parse_training(text.as_bytes(), Path::new("t.csv"), &LabelColumn::Last, 1)
    }

    fn error(text: &str) -> String {
        table(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_features_and_labels() {
        let t = table("a,b,species\n1,2.5,setosa\n-3, 4e-1 ,virginica\n0,0,setosa\n").unwrap();
        assert_eq!(t.feature_names, ["a", "b"]);
        assert_eq!(t.label_name, "species");
        assert_eq!(t.values, [1.0, 2.5, -3.0, 0.4, 0.0, 0.0]);
        assert_eq!(t.labels, [0, 1, 0]);
        assert_eq!(t.row_numbers, [2, 3, 4]);
        assert_eq!(
            t.classes.names().unwrap(),
            ["setosa".to_owned(), "virginica".to_owned()]
        );
        // Integer labels: 0..=max, no names; by name or number, anywhere.
        let t = parse_training(
            b"y,x\n2,1\n0,2\n".as_slice(),
            Path::new("i.csv"),
            &LabelColumn::Named("y".into()),
            1,
        )
        .unwrap();
        assert_eq!((t.labels.clone(), t.classes.count()), (vec![2, 0], 3));
        assert_eq!(t.values, [1.0, 2.0]);
        let by_number = parse_training(
            b"y,x\n2,1\n0,2\n".as_slice(),
            Path::new("i.csv"),
            &LabelColumn::Named("1".into()),
            1,
        )
        .unwrap();
        assert_eq!(by_number, t);
        // One label that is not a whole number makes them all names, sorted byte-wise.
        let t = table("x,y\n1,10\n2,9\n3,x\n").unwrap();
        assert_eq!(t.labels, [0, 1, 2]);
        assert_eq!(t.classes.names().unwrap(), ["10", "9", "x"]);
    }

    #[test]
    fn errors_name_the_row_and_column() {
        let cases = [
            (
                "a,b,y\n1,2,0\n1,x,1\n",
                "t.csv: row 3, column 2 (b): 'x' is not a number",
            ),
            ("a,b,y\n1,,0\n", "t.csv: row 2, column 2 (b): missing value"),
            (
                "a,b,y\n1,2,0\n\n1,NaN,1\n",
                "row 4, column 2 (b): 'NaN' is not a finite",
            ),
            (
                "a,b,y\n1,inf,0\n",
                "row 2, column 2 (b): 'inf' is not a finite",
            ),
            (
                "a,b,y\n1e39,1,0\n",
                "row 2, column 1 (a): '1e39' is not a finite",
            ),
            (
                "a,b,y\n1,2,0\n1,2\n",
                "t.csv: row 3 has 2 cells but the header has 3 columns",
            ),
            ("a,b,y\n1,2,0\n1,2,3,4\n", "row 3 has 4 cells"),
            ("a,b,y\n1,2,\n", "row 2, column 3 (y): missing label"),
            ("", "t.csv: the file is empty"),
            ("a,b,y\n", "t.csv: 0 data rows; at least 1"),
            ("y\n1\n", "the header has 1 columns"),
            (
                "a,,y\n1,2,3\n",
                "row 1, column 2: the header names no column",
            ),
            ("a,a,y\n1,2,3\n", "columns 1 and 2 are both named 'a'"),
            (
                "a,y\n1,256\n",
                "row 2: label '256' makes more than 256 classes",
            ),
        ];
        for (text, want) in cases {
            let e = error(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = parse_training(b"a,y\n1,\xff\n", Path::new("u.csv"), &LabelColumn::Last, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("u.csv: row 2: not valid UTF-8"), "{e}");
        let e = parse_training(
            b"a,y\n1,2\n",
            Path::new("l.csv"),
            &LabelColumn::Named("species".into()),
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no label column 'species' (the columns are a, y)"),
            "{e}"
        );
        let e = parse_training(b"a,y\n1,2\n", Path::new("m.csv"), &LabelColumn::Last, 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.csv: 1 data rows; at least 5"), "{e}");
    }

    #[test]
    fn files_past_the_size_limit_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.csv");
        // Sparse: no gigabyte is written, and none must be read.
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_BYTES + 1).unwrap();
        let e = read_training(&path, &LabelColumn::Last, 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: 1073741825 bytes is more than the 1073741824 a CSV file may have",
                path.display()
            )
        );
        let e = read_training(&dir.path().join("none.csv"), &LabelColumn::Last, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.csv: cannot read"), "{e}");
    }

    #[test]
    fn test_files_follow_the_training_file() {
        let train = table("a,b,y\n1,2,cat\n3,4,dog\n").unwrap();
        let test = parse_test(b"a,b,y\n5,6,dog\n", Path::new("test.csv"), &train).unwrap();
        assert_eq!((test.labels, test.values), (vec![1], vec![5.0, 6.0]));
        let e = parse_test(b"a,b,y\n5,6,bird\n", Path::new("test.csv"), &train)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test.csv: row 2: label 'bird' is not a class of the training file t.csv (cat, dog)"),
            "{e}"
        );
        let e = parse_test(b"a,c,y\n5,6,dog\n", Path::new("test.csv"), &train)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column 2 is 'c', the training file's is 'b'"),
            "{e}"
        );
        let e = parse_test(b"a,b\n5,6\n", Path::new("test.csv"), &train)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 columns, the training file has 3"), "{e}");
        // Integer classes: a label the training file never has is unknown, even
        // below its largest.
        let train = table("a,y\n1,0\n2,2\n").unwrap();
        assert_eq!(train.classes.count(), 3);
        let e = parse_test(b"a,y\n1,1\n", Path::new("test.csv"), &train)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("label '1' is not a class of the training file t.csv (0, 2)"),
            "{e}"
        );
    }

    #[test]
    fn rows_to_classify_with_or_without_labels() {
        let label = LabelColumn::Named("y".into());
        let train =
            parse_training(b"a,y,b\n1,cat,2\n3,dog,4\n", Path::new("t.csv"), &label, 1).unwrap();
        let rows = parse_rows(b"a,b\n5,6\n7,8\n", Path::new("r.csv"), &train).unwrap();
        assert_eq!(
            (rows.values, rows.labels.len()),
            (vec![5.0, 6.0, 7.0, 8.0], 0)
        );
        let rows = parse_rows(b"a,y,b\n5,dog,6\n", Path::new("r.csv"), &train).unwrap();
        assert_eq!((rows.values, rows.labels), (vec![5.0, 6.0], vec![1]));
        let e = parse_rows(b"b,a\n5,6\n", Path::new("r.csv"), &train)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("r.csv: the header differs") && e.contains("column 1 is 'b'"),
            "{e}"
        );
        // Written back, a table reads the same.
        let again = parse_training(&train.to_csv(), Path::new("t.csv"), &label, 1).unwrap();
        assert_eq!(again, train);
    }

    #[test]
    fn splitmix64_matches_its_published_outputs() {
        // The reference implementation's first outputs for seed 1234567.
        let mut g = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..3).map(|_| g.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn split_is_stratified_and_fixed() {
        // 60 rows of class 0, 30 of class 1, 10 of class 2.
        let labels: Vec<u8> = (0..100)
            .map(|i| (i % 10 == 9) as u8 * 2 + (i % 10 >= 6 && i % 10 < 9) as u8)
            .collect();
        let (kept, taken) = stratified_split(&labels, 3, Share::PartsPerMillion(200_000), 7);
        assert_eq!(taken.len(), 20);
        let count = |rows: &[usize], c: u8| rows.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(
            [count(&taken, 0), count(&taken, 1), count(&taken, 2)],
            [12, 6, 2]
        );
        let mut all = [kept.clone(), taken.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        // The same rows every time, other rows with another seed.
        assert_eq!(
            stratified_split(&labels, 3, Share::PartsPerMillion(200_000), 7).1,
            taken
        );
        assert_ne!(
            stratified_split(&labels, 3, Share::PartsPerMillion(200_000), 8).1,
            taken
        );
        // Largest remainder: 7 of 100 rows split 60:30:10 is 4.2, 2.1, 0.7 -> 4, 2, 1.
        let (_, t) = stratified_split(&labels, 3, Share::Rows(7), 1);
        assert_eq!([count(&t, 0), count(&t, 1), count(&t, 2)], [4, 2, 1]);
        // A class never gives up its last row.
        let (kept, taken) = stratified_split(&[0, 0, 0, 1], 2, Share::Rows(3), 1);
        assert!(kept.contains(&3) && taken.len() == 2, "{kept:?} {taken:?}");
    }
}
