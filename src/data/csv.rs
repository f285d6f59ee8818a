//! CSV files: a header row, then one sample per row.
//!
//! The target is the last column unless `target` names one (or several, for a regression on
//! several targets); the features are every other column unless `features` lists them.
//! The targets decide the task unless `task` does:
//! - integers (`0`, `1`, `-3`) → classification, classes sorted numerically (`2` before `10`);
//! - text (`setosa`) → classification, classes sorted as text (byte order: `B` before `a`);
//! - other numbers (`2.5`, `1e3`) → regression.
//!
//! `task: regress` reads integer labels as values; `task: classify` accepts numbers only when
//! they are whole (`1.0` is class `1`). A column of numbers with a stray text cell (`NA`) is
//! an error naming the cell, not a classification with one class per value.
//!
//! Every fault names the file, the line (1-based, as an editor shows it) and the column.

use std::collections::BTreeSet;
use std::path::Path;

use super::config::{DataConfig, TaskKind};
use super::samples::{Inputs, Loaded, Samples, Targets, Task, MAX_CLASSES};
use crate::error::{Error, Result};

/// A loaded CSV file and its feature names (in input order).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The samples, all in the training split (the caller carves the rest).
    pub loaded: Loaded,
    /// The feature columns' names, in input order.
    pub features: Vec<String>,
}

/// Most columns a message lists before "…".
const LIST_MAX: usize = 12;

/// Reads the CSV file at `path` as `config`'s `target`, `features` and `task` say.
pub fn load(path: &Path, config: &DataConfig) -> Result<Table> {
    let fail = |reason: String| Error::data(path, reason);
    if path.is_dir() {
        return Err(fail("is a directory, not a CSV file".into()));
    }
    let (file, _) = crate::read::open_regular(path, "a CSV file")?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let header = read_header(path, &mut reader)?;
    let cols = Columns::pick(path, &header, config)?;

    let mut x: Vec<f32> = Vec::new();
    let mut raw: Vec<Vec<String>> = vec![Vec::new(); cols.target.len()];
    // Byte offsets of the rows: the csv crate's line count skips blank lines, so lines are
    // counted from these when a message needs one.
    let mut starts: Vec<u64> = Vec::new();
    let mut record = ::csv::ByteRecord::new();
    // Doubles a buffer's room with a checked allocation: a file too large for memory is an
    // error naming it, not an abort.
    fn room<T>(v: &mut Vec<T>, more: usize, path: &Path) -> Result<()> {
        if v.capacity() - v.len() < more {
            crate::read::reserve(v, v.len().max(more).max(1024), path, "a CSV file")?;
        }
        Ok(())
    }
    loop {
        if starts.len().is_multiple_of(1 << 16) {
            super::check_interrupt()?;
        }
        room(&mut x, cols.features.len(), path)?;
        room(&mut starts, 1, path)?;
        for r in raw.iter_mut() {
            room(r, 1, path)?;
        }
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(fail(csv_error(path, &e))),
        }
        let start = record.position().map_or(0, ::csv::Position::byte);
        let line = Line(path, start);
        if record.len() != header.len() {
            return Err(fail(format!(
                "{line}: {} field{}, but the header has {} columns",
                record.len(),
                if record.len() == 1 { "" } else { "s" },
                header.len()
            )));
        }
        let cell = |j: usize| -> Result<&str> {
            let text = std::str::from_utf8(&record[j])
                .map_err(|_| fail(format!("{line}, column '{}': not UTF-8 text", header[j])))?;
            if text.is_empty() {
                return Err(fail(format!("{line}, column '{}': empty cell", header[j])));
            }
            Ok(text)
        };
        for &j in &cols.features {
            x.push(
                number(cell(j)?)
                    .map_err(|why| fail(format!("{line}, column '{}': {why}", header[j])))?,
            );
        }
        for (k, &j) in cols.target.iter().enumerate() {
            raw[k].push(cell(j)?.to_string());
        }
        starts.push(start);
    }
    if starts.is_empty() {
        return Err(fail("no data rows (only a header)".into()));
    }
    let names: Vec<String> = cols.target.iter().map(|&j| header[j].clone()).collect();
    let at = |k: usize, row: usize| format!("{}, column '{}'", Line(path, starts[row]), names[k]);
    let (task, y) = targets(&raw, &names, config.task, &at).map_err(fail)?;
    let features: Vec<String> = cols.features.iter().map(|&j| header[j].clone()).collect();
    Ok(Table {
        loaded: Loaded {
            input: vec![features.len()],
            task,
            train: Samples {
                x: Inputs::Values(x),
                y,
            },
            test: None,
            origin: std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string(),
        },
        features,
    })
}

/// The line (1-based, blank lines counted) of the row whose reading started at byte `.1` of
/// file `.0` (before any blank lines the csv crate skipped), shown as `line N`: counted only
/// when a message is written.
struct Line<'a>(&'a Path, u64);

impl std::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::io::Read;
        let mut newlines = 0u64;
        if let Ok((file, _)) = crate::read::open_regular(self.0, "a CSV file") {
            let mut r = std::io::BufReader::new(file);
            let mut buf = [0u8; 1 << 16];
            let mut left = self.1;
            'read: while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if left > 0 {
                        left -= 1;
                    } else if b != b'\n' && b != b'\r' {
                        break 'read; // the row itself
                    }
                    newlines += u64::from(b == b'\n');
                }
            }
        }
        write!(f, "line {}", newlines + 1)
    }
}

/// A csv-crate error as one line (without the crate's own "CSV error:" framing).
fn csv_error(path: &Path, e: &::csv::Error) -> String {
    let line = e.position().map(|p| format!("{}: ", Line(path, p.byte())));
    let what = match e.kind() {
        ::csv::ErrorKind::Io(io) => format!("cannot read it ({io})"),
        _ => e.to_string(),
    };
    format!("{}{}", line.unwrap_or_default(), first_line(&what))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// The header row's column names (checked: UTF-8, non-empty, distinct).
fn read_header<R: std::io::Read>(
    path: &Path,
    reader: &mut ::csv::Reader<R>,
) -> Result<Vec<String>> {
    let fail = |reason: String| Error::data(path, reason);
    let raw = reader
        .byte_headers()
        .map_err(|e| fail(csv_error(path, &e)))?
        .clone();
    if raw.is_empty() {
        return Err(fail("empty file: expected a header row".into()));
    }
    let mut names: Vec<String> = Vec::with_capacity(raw.len());
    for (j, cell) in raw.iter().enumerate() {
        let name = std::str::from_utf8(cell)
            .map_err(|_| fail(format!("line 1: column {}'s name is not UTF-8 text", j + 1)))?;
        if name.is_empty() {
            return Err(fail(format!(
                "line 1: column {} has no name (the first row must be a header)",
                j + 1
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(fail(format!(
                "line 1: column '{}' appears twice in the header",
                shown(name)
            )));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Column indices of the target(s) and the features.
struct Columns {
    target: Vec<usize>,
    features: Vec<usize>,
}

impl Columns {
    fn pick(path: &Path, header: &[String], config: &DataConfig) -> Result<Self> {
        let fail = |reason: String| Error::data(path, reason);
        let listed = || {
            let mut s = header
                .iter()
                .take(LIST_MAX)
                .map(|h| shown(h))
                .collect::<Vec<_>>()
                .join(", ");
            if header.len() > LIST_MAX {
                s.push_str(&format!(", … ({} in all)", header.len()));
            }
            s
        };
        let find = |what: &str, name: &str| {
            header.iter().position(|h| h == name).ok_or_else(|| {
                fail(format!(
                    "no {what} column '{name}'; the columns are: {}",
                    listed()
                ))
            })
        };
        if header.len() < 2 {
            return Err(fail(format!(
                "only {} column ('{}'): a table needs at least one feature column and a target column",
                header.len(),
                listed()
            )));
        }
        let target: Vec<usize> = if config.target.is_empty() {
            vec![header.len() - 1]
        } else {
            config
                .target
                .iter()
                .map(|t| find("target", t))
                .collect::<Result<_>>()?
        };
        let features: Vec<usize> = if config.features.is_empty() {
            (0..header.len()).filter(|j| !target.contains(j)).collect()
        } else {
            config
                .features
                .iter()
                .map(|f| find("feature", f))
                .collect::<Result<_>>()?
        };
        if features.is_empty() {
            return Err(fail(
                "no feature columns: every column is a target".to_string(),
            ));
        }
        // A target among the inputs: the model would be shown the answer.
        if let Some(&j) = features.iter().find(|j| target.contains(j)) {
            let how = if config.target.is_empty() {
                " (the last column, as no target is named)"
            } else {
                ""
            };
            return Err(fail(format!(
                "column '{}' is the target{how} and is also listed in the features; drop it from the features or name another target",
                shown(&header[j])
            )));
        }
        Ok(Self { target, features })
    }
}

/// A cell as a message shows it: at most 40 characters, control characters escaped.
fn shown(cell: &str) -> String {
    let mut s: String = cell.chars().take(40).flat_map(char::escape_debug).collect();
    if cell.chars().count() > 40 {
        s.push('…');
    }
    s
}

/// A feature value: a finite f32.
fn number(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("'{}' is not a finite number", shown(text))),
        Err(_) => Err(format!("'{}' is not a number", shown(text))),
    }
}

/// How one target column's cells read.
enum Column {
    /// Every cell is an integer.
    Integers(Vec<i64>),
    /// Every cell is an integer, some beyond i64 (labels such as IDs): classes, as text in
    /// numeric order.
    BigIntegers,
    /// Every cell is a number (finite), not all integers.
    Numbers(Vec<f64>),
    /// Some cells are not numbers.
    Text,
}

/// Largest whole number an f64 holds exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

fn read_column(
    cells: &[String],
    at: &dyn Fn(usize) -> String,
) -> std::result::Result<Column, String> {
    if let Ok(v) = cells.iter().map(|c| c.parse::<i64>()).collect() {
        return Ok(Column::Integers(v));
    }
    if cells.iter().all(|c| is_integer(c)) {
        return Ok(Column::BigIntegers);
    }
    let mut nums = Vec::with_capacity(cells.len());
    let (mut text_at, mut numeric) = (None, 0usize);
    for (i, c) in cells.iter().enumerate() {
        match c.parse::<f64>() {
            Ok(v) if v.is_finite() => {
                numeric += 1;
                nums.push(v);
            }
            Ok(_) => return Err(format!("{}: '{}' is not a finite number", at(i), shown(c))),
            Err(_) => {
                text_at.get_or_insert(i);
            }
        }
    }
    match text_at {
        None => Ok(Column::Numbers(nums)),
        // Mostly numbers: a stray "NA" is a fault, not a reason to make every value a class.
        Some(i) if numeric * 2 > cells.len() => Err(format!(
            "{}: '{}' is not a number, but {numeric} of the {} targets are (fix the cell, or set task to classify)",
            at(i),
            shown(&cells[i]),
            cells.len()
        )),
        Some(_) => Ok(Column::Text),
    }
}

/// The task and targets from the raw target cells (`raw[k]`: column `k`, row after row).
fn targets(
    raw: &[Vec<String>],
    names: &[String],
    task: Option<TaskKind>,
    at: &dyn Fn(usize, usize) -> String,
) -> std::result::Result<(Task, Targets), String> {
    let regress = task == Some(TaskKind::Regress) || raw.len() > 1;
    if regress {
        return regression(raw, names, at);
    }
    let cells = &raw[0];
    let at0 = |row: usize| at(0, row);
    let column = if task == Some(TaskKind::Classify) {
        // Text labels that look like numbers stay text when any label is not a number.
        match read_column(cells, &at0) {
            Ok(c) => c,
            Err(_) if cells.iter().any(|c| c.parse::<f64>().is_err()) => Column::Text,
            Err(e) => return Err(e),
        }
    } else {
        read_column(cells, &at0)?
    };
    let (classes, y) = match column {
        Column::Integers(v) => int_classes(&v),
        Column::Numbers(v) if task == Some(TaskKind::Classify) => {
            let mut ints = Vec::with_capacity(v.len());
            for (i, &f) in v.iter().enumerate() {
                if f.fract() != 0.0 || f.abs() > EXACT {
                    return Err(format!(
                        "{}: '{}' is not a whole number; task classify needs class labels",
                        at0(i),
                        shown(&cells[i])
                    ));
                }
                ints.push(f as i64);
            }
            int_classes(&ints)
        }
        Column::Numbers(_) => return regression(raw, names, at),
        Column::BigIntegers => big_int_classes(cells),
        Column::Text => text_classes(cells),
    };
    if classes.len() > MAX_CLASSES {
        return Err(format!(
            "target column '{}' has {} distinct values, more than the {MAX_CLASSES} classes lrfind handles (for values, set task to regress)",
            names[0],
            classes.len()
        ));
    }
    if classes.len() < 2 {
        return Err(format!(
            "target column '{}' has one class only ('{}'); classification needs at least two",
            names[0],
            shown(classes.first().map_or("", String::as_str))
        ));
    }
    Ok((Task::Classify { classes }, Targets::Classes(y)))
}

fn int_classes(v: &[i64]) -> (Vec<String>, Vec<u32>) {
    let set: BTreeSet<i64> = v.iter().copied().collect();
    let sorted: Vec<i64> = set.into_iter().collect();
    let y = v
        .iter()
        .map(|x| sorted.binary_search(x).unwrap_or(0) as u32)
        .collect();
    (sorted.iter().map(i64::to_string).collect(), y)
}

/// An integer literal of any length: an optional sign, then digits.
fn is_integer(c: &str) -> bool {
    let d = c.strip_prefix(['-', '+']).unwrap_or(c);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// An integer literal in its shortest form (`+007` → `7`, `-0` → `0`).
fn normal_integer(c: &str) -> String {
    let (neg, d) = match c.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, c.strip_prefix('+').unwrap_or(c)),
    };
    let d = d.trim_start_matches('0');
    match (d.is_empty(), neg) {
        (true, _) => "0".into(),
        (false, true) => format!("-{d}"),
        (false, false) => d.into(),
    }
}

/// Numeric order of two normal integer literals of any length.
fn cmp_integers(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| {
        let neg = s.starts_with('-');
        (neg, s.trim_start_matches('-').len())
    };
    let ((na, la), (nb, lb)) = (key(a), key(b));
    match (na, nb) {
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => la.cmp(&lb).then_with(|| a.cmp(b)),
        (true, true) => lb.cmp(&la).then_with(|| b.cmp(a)),
    }
}

/// Classes of integer labels too large for i64, sorted numerically.
fn big_int_classes(cells: &[String]) -> (Vec<String>, Vec<u32>) {
    let normal: Vec<String> = cells.iter().map(|c| normal_integer(c)).collect();
    let mut sorted: Vec<&str> = normal
        .iter()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    sorted.sort_by(|a, b| cmp_integers(a, b));
    let y = normal
        .iter()
        .map(|c| sorted.binary_search_by(|s| cmp_integers(s, c)).unwrap_or(0) as u32)
        .collect();
    (sorted.into_iter().map(String::from).collect(), y)
}

fn text_classes(cells: &[String]) -> (Vec<String>, Vec<u32>) {
    let set: BTreeSet<&str> = cells.iter().map(String::as_str).collect();
    let sorted: Vec<&str> = set.into_iter().collect();
    let y = cells
        .iter()
        .map(|c| sorted.binary_search(&c.as_str()).unwrap_or(0) as u32)
        .collect();
    (sorted.into_iter().map(String::from).collect(), y)
}

fn regression(
    raw: &[Vec<String>],
    names: &[String],
    at: &dyn Fn(usize, usize) -> String,
) -> std::result::Result<(Task, Targets), String> {
    let n = raw.first().map_or(0, Vec::len);
    let k = raw.len();
    let mut values = vec![0f32; n * k];
    for (c, cells) in raw.iter().enumerate() {
        for (i, cell) in cells.iter().enumerate() {
            values[i * k + c] = number(cell).map_err(|why| {
                format!("{}: {why}; a regression needs numeric targets", at(c, i))
            })?;
        }
        let first = values[c];
        if (0..n).all(|i| values[i * k + c] == first) {
            return Err(format!(
                "target column '{}' is constant ({first} in every row): there is nothing to regress",
                names[c]
            ));
        }
    }
    Ok((
        Task::Regress {
            targets: names.to_vec(),
        },
        Targets::Values { values, columns: k },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::config::Source;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tabular")
            .join(name)
    }

    fn config(path: &Path) -> DataConfig {
        DataConfig::new(Source::Csv(path.to_path_buf()))
    }

    /// Loads `text` written to a file `t.csv`, with `edit` applied to the config.
    fn load_text(text: &str, edit: impl FnOnce(&mut DataConfig)) -> Result<Table> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, text).unwrap();
        let mut c = config(&p);
        edit(&mut c);
        load(&p, &c)
    }

    /// The error for `text`, with the temporary directory cut off.
    fn fault(text: &str, edit: impl FnOnce(&mut DataConfig)) -> String {
        let e = load_text(text, edit).unwrap_err().to_string();
        e.rsplit_once("/t.csv: ")
            .map(|(_, r)| r.to_string())
            .unwrap_or(e)
    }

    #[test]
    fn iris_loads_with_text_classes_in_sorted_order() {
        let t = load(&fixture("iris.csv"), &config(&fixture("iris.csv"))).unwrap();
        assert_eq!(t.loaded.input, [4]);
        assert_eq!(
            t.features,
            [
                "sepal_length_cm",
                "sepal_width_cm",
                "petal_length_cm",
                "petal_width_cm"
            ]
        );
        assert_eq!(
            t.loaded.task,
            Task::Classify {
                classes: vec!["setosa".into(), "versicolor".into(), "virginica".into()]
            }
        );
        assert_eq!(t.loaded.train.len(), 150);
        let Targets::Classes(y) = &t.loaded.train.y else {
            panic!()
        };
        assert_eq!((y[0], y[50], y[149]), (0, 1, 2));
        let Inputs::Values(x) = &t.loaded.train.x else {
            panic!()
        };
        // The first row: 5.1,3.5,1.4,0.2,setosa.
        assert_eq!(x[..4], [5.1, 3.5, 1.4, 0.2]);
        assert!(t.loaded.origin.ends_with("tests/fixtures/tabular/iris.csv"));
    }

    #[test]
    fn integer_labels_are_classes_sorted_numerically() {
        let t = load(
            &fixture("breast_cancer.csv"),
            &config(&fixture("breast_cancer.csv")),
        )
        .unwrap();
        assert_eq!((t.loaded.input[0], t.loaded.train.len()), (30, 569));
        assert_eq!(
            t.loaded.task,
            Task::Classify {
                classes: vec!["0".into(), "1".into()]
            }
        );
        let t = load(
            &fixture("digits8x8.csv"),
            &config(&fixture("digits8x8.csv")),
        )
        .unwrap();
        assert_eq!((t.loaded.input[0], t.loaded.train.len()), (64, 1797));
        assert_eq!(t.loaded.task.outputs(), 10);
        // Numeric order, not text order: 2 before 10.
        let t = load_text("a,y\n1,10\n2,2\n3,-1\n4,2\n", |_| {}).unwrap();
        assert_eq!(
            t.loaded.task,
            Task::Classify {
                classes: vec!["-1".into(), "2".into(), "10".into()]
            }
        );
        assert_eq!(t.loaded.train.y, Targets::Classes(vec![2, 1, 0, 1]));
    }

    #[test]
    fn float_targets_are_a_regression_and_task_overrides() {
        let t = load_text("a,b,y\n1,2,0.5\n3,4,1.5\n", |_| {}).unwrap();
        assert_eq!(
            t.loaded.task,
            Task::Regress {
                targets: vec!["y".into()]
            }
        );
        assert_eq!(
            t.loaded.train.y,
            Targets::Values {
                values: vec![0.5, 1.5],
                columns: 1
            }
        );
        // Integer labels read as values.
        let t = load_text("a,y\n1,3\n2,5\n", |c| c.task = Some(TaskKind::Regress)).unwrap();
        assert_eq!(
            t.loaded.train.y,
            Targets::Values {
                values: vec![3.0, 5.0],
                columns: 1
            }
        );
        // Whole floats as classes.
        let t = load_text("a,y\n1,1.0\n2,0\n3,1\n", |c| {
            c.task = Some(TaskKind::Classify)
        })
        .unwrap();
        assert_eq!(t.loaded.train.y, Targets::Classes(vec![1, 0, 1]));
        // Numbers mixed with text are text labels when classifying is asked for.
        let t = load_text("a,y\n1,1\n2,b\n3,a\n", |c| {
            c.task = Some(TaskKind::Classify)
        })
        .unwrap();
        assert_eq!(
            t.loaded.task,
            Task::Classify {
                classes: vec!["1".into(), "a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn targets_and_features_are_chosen_by_name() {
        let text = "y,a,z,b\n1.5,1,x,2\n2.5,3,y,4\n0.5,5,z,6\n";
        let t = load_text(text, |c| {
            c.target = vec!["y".into()];
            c.features = vec!["b".into(), "a".into()];
        })
        .unwrap();
        assert_eq!(t.features, ["b", "a"]);
        assert_eq!(
            t.loaded.train.x,
            Inputs::Values(vec![2., 1., 4., 3., 6., 5.])
        );
        // Two targets: a regression on both, row-major.
        let t = load_text("a,u,v\n1,0.5,7\n2,1.5,8\n", |c| {
            c.target = vec!["u".into(), "v".into()];
        })
        .unwrap();
        assert_eq!(
            t.loaded.train.y,
            Targets::Values {
                values: vec![0.5, 7., 1.5, 8.],
                columns: 2
            }
        );
        assert_eq!(t.loaded.task.outputs(), 2);
    }

    #[test]
    fn quoting_whitespace_and_a_bom_are_read() {
        let t = load_text(
            "\u{feff}\"a\", b ,label\n\" 1\",2,\"x, y\"\n3 , 4,z\n",
            |_| {},
        )
        .unwrap();
        assert_eq!(t.features, ["a", "b"]);
        assert_eq!(t.loaded.train.x, Inputs::Values(vec![1., 2., 3., 4.]));
        assert_eq!(
            t.loaded.task,
            Task::Classify {
                classes: vec!["x, y".into(), "z".into()]
            }
        );
    }

    #[test]
    fn a_ragged_row_names_its_line() {
        assert_eq!(
            fault("a,b,y\n1,2,x\n3,4\n5,6,z\n", |_| {}),
            "line 3: 2 fields, but the header has 3 columns"
        );
    }

    #[test]
    fn an_empty_cell_names_line_and_column() {
        assert_eq!(
            fault("a,b,y\n1,2,x\n3,,y\n", |_| {}),
            "line 3, column 'b': empty cell"
        );
        assert_eq!(
            fault("a,b,y\n1,2,x\n3,4,\n", |_| {}),
            "line 3, column 'y': empty cell"
        );
    }

    #[test]
    fn a_non_numeric_feature_names_line_and_column() {
        assert_eq!(
            fault("a,b,y\n1,2,x\n\n3,abc,y\n", |_| {}),
            "line 4, column 'b': 'abc' is not a number"
        );
        // Blank lines, CRLF and a quoted field over two lines all count, as in an editor.
        assert_eq!(
            fault("a,b,y\r\n1,2,\"x\r\nx\"\r\n\r\n\r\n3,abc,y\r\n", |_| {}),
            "line 6, column 'b': 'abc' is not a number"
        );
    }

    #[test]
    fn nan_and_infinity_are_refused() {
        assert_eq!(
            fault("a,b,y\n1,NaN,x\n", |_| {}),
            "line 2, column 'b': 'NaN' is not a finite number"
        );
        assert_eq!(
            fault("a,b,y\n1,2,x\n1,1e39,x\n", |_| {}),
            "line 3, column 'b': '1e39' is not a finite number"
        );
        assert_eq!(
            fault("a,y\n1,0.5\n2,inf\n", |_| {}),
            "line 3, column 'y': 'inf' is not a finite number"
        );
    }

    #[test]
    fn a_missing_target_column_lists_the_columns() {
        assert_eq!(
            fault("a,b,y\n1,2,x\n", |c| c.target = vec!["kind".into()]),
            "no target column 'kind'; the columns are: a, b, y"
        );
    }

    #[test]
    fn an_unknown_feature_lists_the_columns() {
        assert_eq!(
            fault("a,b,y\n1,2,x\n", |c| c.features =
                vec!["a".into(), "c".into()]),
            "no feature column 'c'; the columns are: a, b, y"
        );
    }

    #[test]
    fn one_class_only_is_refused() {
        assert_eq!(
            fault("a,y\n1,x\n2,x\n", |_| {}),
            "target column 'y' has one class only ('x'); classification needs at least two"
        );
    }

    #[test]
    fn a_constant_regression_target_is_refused() {
        assert_eq!(
            fault("a,y\n1,2.5\n2,2.5\n", |_| {}),
            "target column 'y' is constant (2.5 in every row): there is nothing to regress"
        );
    }

    #[test]
    fn text_where_a_regression_needs_numbers_is_named() {
        assert_eq!(
            fault("a,y\n1,x\n2,y\n", |c| c.task = Some(TaskKind::Regress)),
            "line 2, column 'y': 'x' is not a number; a regression needs numeric targets"
        );
        assert_eq!(
            fault("a,y\n1,2.5\n2,3.5\n3,NA\n", |_| {}),
            "line 4, column 'y': 'NA' is not a number, but 2 of the 3 targets are (fix the cell, or set task to classify)"
        );
        assert_eq!(
            fault("a,y\n1,2.5\n2,3\n", |c| c.task = Some(TaskKind::Classify)),
            "line 2, column 'y': '2.5' is not a whole number; task classify needs class labels"
        );
    }

    #[test]
    fn headers_and_empty_files_are_checked() {
        assert_eq!(fault("", |_| {}), "empty file: expected a header row");
        assert_eq!(fault("a,b,y\n", |_| {}), "no data rows (only a header)");
        assert_eq!(
            fault("a,a,y\n1,2,x\n", |_| {}),
            "line 1: column 'a' appears twice in the header"
        );
        assert_eq!(
            fault("a,,y\n1,2,x\n", |_| {}),
            "line 1: column 2 has no name (the first row must be a header)"
        );
        assert_eq!(
            fault("y\n1\n", |_| {}),
            "only 1 column ('y'): a table needs at least one feature column and a target column"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, b"a,b\n\xff1,2\n").unwrap();
        let e = load(&p, &config(&p)).unwrap_err().to_string();
        assert!(
            e.ends_with("t.csv: line 2, column 'a': not UTF-8 text"),
            "{e}"
        );
    }

    #[test]
    fn odd_files_give_errors_not_panics() {
        // A small deterministic fuzz: a valid table with random bytes replaced, inserted or
        // deleted, read as each task.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let valid = b"a,b,y\n1,2.5,x\n3,-4,z\n5,6e1,x\n";
        let alphabet = b"ab,\n\"01.5-e x\r\t\xff;NaN";
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        let (mut ok, mut bad) = (0, 0);
        for _ in 0..300 {
            let mut bytes = valid.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len());
                let b = alphabet[rng.random_range(0..alphabet.len())];
                match rng.random_range(0..3) {
                    0 => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            std::fs::write(&p, &bytes).unwrap();
            for task in [None, Some(TaskKind::Classify), Some(TaskKind::Regress)] {
                let mut c = config(&p);
                c.task = task;
                match load(&p, &c) {
                    Ok(t) => {
                        ok += 1;
                        let n = t.loaded.train.len();
                        assert_eq!(t.loaded.train.x.len(), n * t.loaded.input[0]);
                        assert_eq!(t.loaded.train.y.len(), n);
                    }
                    Err(e) => {
                        bad += 1;
                        assert!(!e.to_string().contains('\n'), "{e}");
                    }
                }
            }
        }
        assert!(ok > 50 && bad > 50, "{ok} valid, {bad} refused");
    }
}
